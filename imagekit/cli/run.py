"""`imagekit run PIPELINE --local`: run a pipeline on this machine with the embedded runtime."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from imagekit_core.errors import UsageError
from imagekit_core.platforms import host, parse_platform
from imagekit_core.spec import load_pipeline
from imagekit_runtime.main import run_pipeline
from imagekit_runtime.observe.metrics import Monitor
from imagekit_runtime.run.flags import RUN, STATUS, RunFlags, flags_of
from imagekit_runtime.run.status import collect_status, format_status
from imagekit_runtime.run.summary import format_summary
from imagekit_runtime.states import StepState

from .common import OutputFormat, emit_json, emit_text, stderr
from .flagtable import command_with_flags, option
from .run_image import run_in_image


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


def run_pipeline_command(pipeline: Path, flags: RunFlags, local: bool, dry_run: bool, platform: str | None,
                         image: str | None) -> None:
    """Run (or resume) a pipeline; exit 0 done, 1 a step failed, 2 bad input, 3 environment, 143 SIGTERM."""
    chosen = parse_platform(platform) if platform is not None else host()
    if image is not None and chosen == host():
        raise UsageError(f"--image {image}: only a run for another platform goes into an image (fix: add --platform "
                         "PLATFORM, or leave out --image to run the steps here)")
    if not local:
        raise UsageError("--no-local: only --local runs here (fix: run the image with `imagekit pod up` or docker run)")
    if dry_run:
        show_status(pipeline, flags)
        return
    if chosen != host():
        raise typer.Exit(run_in_image(load_pipeline(pipeline), flags, chosen, image))
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
           help="linux/amd64 or linux/arm64: another than this machine's runs in the pipeline's image for it "
                "(--image), emulated, with this run's directories [default: this machine's, steps as processes here]"),
    option("image", str | None, None, "--image", metavar="REF",
           help="with --platform: the image built for it (the --tag of `build --platform`, or its pushed index)"),
]


def register(app: typer.Typer) -> None:
    app.command("run")(command_with_flags(flags_of(RUN), RunFlags, run_pipeline_command, RUN_EXTRA))
    app.command("status")(command_with_flags(flags_of(STATUS), RunFlags, show_status))
