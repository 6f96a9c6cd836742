"""`imagekit run PIPELINE --local`: run a pipeline on this machine with the embedded runtime."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from imagekit_runtime import contract
from imagekit_runtime.data.shm_budget import SHM_SOFT_HELP
from imagekit_runtime.errors import UsageError
from imagekit_runtime.main import run_pipeline
from imagekit_runtime.observe.monitoring import Monitor
from imagekit_runtime.run.settings import RunSettings, check_params, parse_params
from imagekit_runtime.run.shard_lock import DEFAULT_WAIT_SECONDS
from imagekit_runtime.run.status import collect_status, format_status
from imagekit_runtime.run.summary import format_summary
from imagekit_runtime.spec import load_pipeline
from imagekit_runtime.states import StepState

from .common import OutputFormat, emit_json, emit_text, stderr

SHM_HELP = "shared-memory directory [default: /dev/shm/imagekit-UID on a host, /dev/shm/imagekit in the image]"


def location_settings(
    shm_dir: str | None, ssd: str | None, pv: str | None, results: str | None, run_dir: str | None,
    shard_index: int | None, shard_count: int | None, no_checkpoints: bool,
) -> RunSettings:
    return RunSettings(shm_dir=shm_dir, ssd=ssd, pv=pv, results=results, run_dir=run_dir, shard_index=shard_index,
                       shard_count=shard_count, no_checkpoints=no_checkpoints)


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


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        local: bool = typer.Option(True, "--local/--no-local",
                                   help="run on this machine (steps' requirements in cached venvs)"),
        shm_dir: str = typer.Option(None, help=SHM_HELP),
        ssd: str = typer.Option(None, help="SSD checkpoint directory [default: the pipeline's checkpoint.ssd]"),
        pv: str = typer.Option(None, help="PV checkpoint directory [default: the pipeline's checkpoint.pv]"),
        results: str = typer.Option(None, help="results directory [default: <pv>/results/<shard>]"),
        run_dir: str = typer.Option(None, help="journal, logs, supervisord.conf [default: in the shm directory]"),
        shard_index: int = typer.Option(None, help=f"this shard [default: ${contract.SHARD_INDEX} or 0]"),
        shard_count: int = typer.Option(None, help="number of shards [default: the pipeline's shards]"),
        param: list[str] = typer.Option([], "--param", help="KEY=VALUE, overrides a pipeline param"),
        parallelism: int = typer.Option(None, help="compute-bound (cpu) steps at once "
                                                  "[default: the pipeline's parallelism, else the CPUs this may use]"),
        no_checkpoints: bool = typer.Option(False, "--no-checkpoints", help="write no SSD or PV checkpoints"),
        force: bool = typer.Option(False, "--force", help="run again even if the shard is complete"),
        wait_lock: float = typer.Option(DEFAULT_WAIT_SECONDS, "--wait-lock", metavar="SECONDS",
                                        help="wait this long for another run of the same shard to end, then exit 3"),
        metrics: str = typer.Option(None, "--metrics", metavar="ADDR",
                                    help="serve Prometheus metrics, /healthz and /readyz on ADDR (PORT or HOST:PORT)"),
        shm_soft: bool = typer.Option(False, "--shm-soft", help=SHM_SOFT_HELP),
        dry_run: bool = typer.Option(False, "--dry-run", help="only show where data is and which steps would run"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Run (or resume) a pipeline; exit 0 done, 1 a step failed, 2 bad input, 3 environment, 143 SIGTERM."""
        if not local:
            raise UsageError("--no-local: only --local runs here (fix: run the image with `imagekit pod up` or docker run)")
        check_params(load_pipeline(pipeline), parse_params(param))  # a misspelt --param is refused on the host
        settings = location_settings(shm_dir, ssd, pv, results, run_dir, shard_index, shard_count, no_checkpoints)
        if dry_run:
            show_status(pipeline, settings, param, output)
            return
        monitor = Monitor.serving(metrics)
        try:
            with StepProgress(str(pipeline)) as progress:
                summary = run_pipeline(pipeline, settings, parse_params(param), force=force, parallelism=parallelism,
                                       on_transition=progress.on_transition, wait_lock=wait_lock, monitor=monitor,
                                       shm_soft=shm_soft)
        finally:
            monitor.close()
        if output is OutputFormat.json:  # the result is the JSON; the table stays in sight on stderr
            stderr.print(format_summary(summary))
            emit_json(summary.to_json())
        else:
            emit_text(format_summary(summary))
        raise typer.Exit(summary.exit_code)

    @app.command()
    def status(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        shm_dir: str = typer.Option(None, help=SHM_HELP),
        ssd: str = typer.Option(None, help="SSD checkpoint directory"),
        pv: str = typer.Option(None, help="PV checkpoint directory"),
        results: str = typer.Option(None, help="results directory"),
        shard_index: int = typer.Option(None, help="this shard"),
        shard_count: int = typer.Option(None, help="number of shards"),
        param: list[str] = typer.Option([], "--param", help="KEY=VALUE, as given to run"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Where each data item is available (shm / ssd / pv / results) and which steps a run would start."""
        settings = location_settings(shm_dir, ssd, pv, results, None, shard_index, shard_count, False)
        show_status(pipeline, settings, param, output)


def show_status(pipeline: Path, settings: RunSettings, param: list[str], output: OutputFormat) -> None:
    report = collect_status(pipeline, settings, parse_params(param))
    if output is OutputFormat.json:
        emit_json(report)
    else:
        emit_text(format_status(report))
