"""`imagekit run PIPELINE --local`: run a pipeline on this machine with the embedded runtime."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from imagekit_core.errors import UsageError
from imagekit_core.platforms import host, parse_platform
from imagekit_runtime.main import run_pipeline
from imagekit_runtime.observe.metrics import Monitor
from imagekit_runtime.run.flags import RUN, STATUS, RunFlags, flags_of
from imagekit_runtime.run.status import collect_status, format_status
from imagekit_runtime.run.summary import format_summary
from imagekit_runtime.states import StepState

from .common import OutputFormat, emit_json, emit_text, stderr
from .flagtable import command_with_flags, option


class StepProgress:
    """A live line on stderr: steps done of steps to run, and which are running (terminals only)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=stderr, transient=True,
                                 disable=not stderr.is_terminal)
        self.task = self.progress.add_task(title, total=None)
        self.to_run: set[str] = set()
        self.running: set[str] = set()
        self.done = 0

    def __enter__(self) -> StepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_transition(self, step: str, old: StepState, new: StepState) -> None:
        if new in (StepState.READY, StepState.WARM):  # a warm step waits for its inputs with its process up
            self.to_run.add(step)
        if new is StepState.RUNNING:
            self.running.add(step)
        elif old is StepState.RUNNING:
            self.running.discard(step)
        if new is StepState.COMMITTED:
            self.done += 1
        running = ", ".join(sorted(self.running)) or "-"
        self.progress.update(self.task, description=f"{self.title}: running {running}",
                             completed=self.done, total=max(len(self.to_run), self.done) or None)


def check_platform(text: str | None) -> None:
    """`run --platform P`: the steps run as this machine's processes, so P must be this machine's platform."""
    if text is None:
        return
    platform, here = parse_platform(text), host()
    if platform != here:
        raise UsageError(f"--platform {platform}: `imagekit run` runs the steps as processes of this machine, which "
                         f"is {here} (fix: build the image for {platform}, render it and run it emulated with "
                         f"`imagekit pod up RENDERED --platform {platform}`)")


def run_pipeline_command(pipeline: Path, flags: RunFlags, local: bool, dry_run: bool, platform: str | None) -> None:
    """Run (or resume) a pipeline; exit 0 done, 1 a step failed, 2 bad input, 3 environment, 143 SIGTERM."""
    check_platform(platform)
    if not local:
        raise UsageError("--no-local: only --local runs here (fix: run the image with `imagekit pod up` or docker run)")
    if dry_run:
        show_status(pipeline, flags)
        return
    monitor = Monitor.serving(flags.metrics)
    try:
        with StepProgress(str(pipeline)) as progress:
            summary = run_pipeline(pipeline, flags, on_transition=progress.on_transition, monitor=monitor)
    finally:
        monitor.close()
    if flags.output == OutputFormat.json.value:  # the result is the JSON; the table stays in sight on stderr
        stderr.print(format_summary(summary))
        emit_json(summary.to_json())
    else:
        emit_text(format_summary(summary))
    raise typer.Exit(summary.exit_code)


def show_status(pipeline: Path, flags: RunFlags) -> None:
    """Where each data item is available (shm / ssd / pv / results) and which steps a run would start."""
    report = collect_status(pipeline, flags)
    if flags.output == OutputFormat.json.value:
        emit_json(report)
    else:
        emit_text(format_status(report))


RUN_EXTRA = [
    option("local", bool, True, "--local/--no-local", help="run on this machine (steps' requirements in cached venvs)"),
    option("dry_run", bool, False, "--dry-run",
           help="only show where data is and which steps would run (as `imagekit status`)"),
    option("platform", str | None, None, "--platform", metavar="PLATFORM",
           help="this machine's platform (linux/amd64 or linux/arm64), the only one `run` runs; another's image runs "
                "emulated with `imagekit pod up --platform` [default: this machine's]"),
]


def register(app: typer.Typer) -> None:
    app.command("run")(command_with_flags(flags_of(RUN), RunFlags, run_pipeline_command, RUN_EXTRA))
    app.command("status")(command_with_flags(flags_of(STATUS), RunFlags, show_status))
