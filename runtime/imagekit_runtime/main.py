"""`imagekit-runtime` / `python3 -m imagekit_runtime`: the image's entrypoint.

    run PIPELINE     run the pipeline's steps to completion (or resume them)
    status PIPELINE  where each data item is (shm, ssd, pv) and which steps would run
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import contract
from .checkpoint.store import CheckpointStore
from .data.copier import Copier
from .data.datastore import DataStore
from .data.shm_budget import SHM_SOFT_HELP
from .errors import EXIT_INTERNAL, ImagekitError, write_crash_report
from .observe import logformat
from .observe.journal import Journal, new_run_id
from .observe.log_watch import StepEcho
from .observe.logs import StepLogs
from .observe.monitoring import Monitor
from .redact import redact
from .run import shard_lock
from .run.conductor import Conductor
from .run.options import Collaborators, RunOptions
from .run.preflight import check_environment
from .run.settings import RunSettings, parse_params, resolve_environments, resolve_layout, resolve_shard
from .run.shard_run import run_shard
from .run.status import collect_status, format_status
from .run.summary import RunSummary, format_summary
from .spec import PipelineSpec, load_pipeline
from .states import StepState
from .supervise.client import Supervisor
from .supervise.environments import EnvironmentProvider
from .supervise.exit_watch import ExitWatcher
from .supervise.gates import Gates, gates_dir
from .supervise.processes import StepProcesses

log = logging.getLogger("imagekit.runtime")


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="pipeline.yaml or its directory")
    parser.add_argument("--shm-dir",
                        help=f"shared-memory directory (default {contract.DEFAULT_SHM_DIR}, or ${contract.SHM_DIR})")
    parser.add_argument("--ssd", help=f"SSD checkpoint directory (default: checkpoint.ssd, or ${contract.SSD_DIR})")
    parser.add_argument("--pv", help=f"PV checkpoint directory (default: checkpoint.pv, or ${contract.PV_DIR})")
    parser.add_argument("--results",
                        help=f"results directory (default <pv>/results/<shard>, or ${contract.RESULTS_DIR})")
    parser.add_argument("--run-dir", help="journal, logs and supervisord config (default <shm>/…/run)")
    parser.add_argument("--shard-index", type=int,
                        help=f"this shard (default ${contract.SHARD_INDEX} or the pod ordinal)")
    parser.add_argument("--shard-count", type=int, help="number of shards (default: the pipeline's `shards`)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a pipeline param")
    parser.add_argument("--no-checkpoints", action="store_true", help="write no SSD or PV checkpoints")
    parser.add_argument("--deps-root", help=f"prebuilt step dependencies (in images: ${contract.DEPS_ROOT})")


def settings_from(args: argparse.Namespace) -> RunSettings:
    return RunSettings(shm_dir=args.shm_dir, ssd=args.ssd, pv=args.pv, results=args.results, run_dir=args.run_dir,
                       shard_index=args.shard_index, shard_count=args.shard_count, deps_root=args.deps_root,
                       no_checkpoints=args.no_checkpoints)


def run_pipeline(pipeline: Path, settings: RunSettings, params: dict[str, str], *, force: bool = False,
                 parallelism: int | None = None, quiet_steps: bool = False,
                 on_transition: Callable[[str, StepState, StepState], None] | None = None,
                 wait_lock: float = shard_lock.DEFAULT_WAIT_SECONDS, monitor: Monitor | None = None,
                 json_logs: bool = False, shm_soft: bool = False, release_when_complete: bool = False) -> RunSummary:
    """Lock the shard (waiting up to wait_lock seconds for a run of it to end), check the environment, run.
    A monitor (metrics, health) is fed the run's journal and the conductor's heartbeat."""
    spec = load_pipeline(pipeline)
    shard_index, shard_count = resolve_shard(spec, settings)
    layout = resolve_layout(spec, settings, shard_index)
    monitor = monitor or Monitor()
    monitor.start(spec, layout)
    with shard_lock.held(layout.shm_dir, wait_lock, f"shard {shard_index} of {spec.name}") as lock:
        check_environment(spec, layout)
        options = RunOptions(layout=layout, shard_index=shard_index, shard_count=shard_count, params=params,
                             parallelism=parallelism, force=force, on_tick=monitor.health.beat,
                             on_transition=on_transition, inherit_fds=(lock.fd,), shm_soft=shm_soft,
                             release_when_complete=release_when_complete)
        with open_conductor(spec, options, resolve_environments(settings), monitor,
                            StepOutput(quiet_steps, json_logs)) as conductor:
            return run_shard(conductor)


@dataclass(frozen=True)
class StepOutput:
    quiet: bool = False    # echo no step output
    as_json: bool = False  # echo it as JSON lines on stdout (else prefixed lines on stderr)


@contextmanager
def open_conductor(spec: PipelineSpec, options: RunOptions, environments: EnvironmentProvider,
                   monitor: Monitor | None = None, output: StepOutput = StepOutput()) -> Iterator[Conductor]:
    """A conductor with everything it drives made for it; all of it closed (journal last) when the run is over."""
    layout = options.layout
    layout.create()
    socket_dir = short_tempdir(layout.run_dir)
    warnings: list[str] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, socket_dir, ignore_errors=True)
        journal = Journal(layout.journal, new_run_id(), listener=monitor.listen if monitor else None)
        stack.callback(journal.close)
        copier = Copier()
        stack.callback(copier.close)  # before the journal: a copy journals its checkpoint
        watcher = ExitWatcher()
        stack.callback(watcher.close)
        log_stream = stack.enter_context(open(os.devnull, "w")) if output.quiet else \
            sys.stdout if output.as_json else sys.stderr
        checkpoints = CheckpointStore.for_spec(spec, layout, options.shard_index, warnings)
        ssd = checkpoints.tier("ssd")
        step_logs = StepLogs(layout, log_stream, output.as_json, ssd.root / contract.LOGS_DIR if ssd else None)
        supervisor = Supervisor(layout.supervisor_conf, socket_dir / "supervisor.sock", layout.supervisor_log,
                                pass_fds=options.inherit_fds)
        parts = Collaborators(
            store=DataStore(layout), checkpoints=checkpoints, copier=copier, journal=journal,
            host=StepProcesses(supervisor, watcher, Gates(gates_dir(layout.run_dir)), layout.run_dir),
            echo=lambda names: StepEcho.following(layout.logs_dir, names, step_logs, options.log_interval),
            environments=environments, warnings=warnings)
        yield Conductor(spec, options, parts)


def short_tempdir(run_dir: Path) -> Path:
    """A directory for the supervisord socket: unix socket paths must stay under ~100 bytes."""
    for parent in (os.environ.get("TMPDIR"), "/tmp", str(run_dir)):
        if parent and os.access(parent, os.W_OK) and len(parent) < 60:
            return Path(tempfile.mkdtemp(prefix="ik-", dir=parent))
    return Path(tempfile.mkdtemp(prefix="ik-"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagekit-runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) the pipeline")
    add_location_arguments(run)
    run.add_argument("--force", action="store_true", help="run again even if this shard is complete")
    run.add_argument("--parallelism", type=int,
                     help="compute-bound (cpu) steps at once: overrides the pipeline's parallelism.cpu")
    run.add_argument("--wait-lock", type=float, default=shard_lock.DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                     help="wait this long for another run of the same shard to end, then exit 3 "
                          f"(default {shard_lock.DEFAULT_WAIT_SECONDS:g})")
    run.add_argument("--shm-soft", action="store_true", help=SHM_SOFT_HELP)
    run.add_argument("--output", choices=["text", "json"], default="text")
    run.add_argument("--hold-when-complete", action="store_true",
                     default=contract.is_hold_requested(os.environ.get(contract.HOLD_WHEN_COMPLETE)),
                     help="after success, wait for SIGTERM instead of exiting (StatefulSet pods restart exited "
                          "containers); default $" + contract.HOLD_WHEN_COMPLETE)
    run.add_argument("--metrics", metavar="ADDR",
                     help=f"serve Prometheus metrics, {contract.HEALTHZ_PATH} and {contract.READYZ_PATH} on ADDR "
                          f"(PORT or HOST:PORT; pods: :{contract.METRICS_PORT}); off by default")
    run.add_argument("--verbose", "-v", action="store_true")
    status = commands.add_parser("status", help="where each data item is and which steps would run")
    add_location_arguments(status)
    status.add_argument("--output", choices=["text", "json"], default="text")
    status.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    monitor: Monitor | None = None
    try:
        json_logs = logformat.wants_json(os.environ)
        logformat.configure(args.verbose, json_logs)
        params = parse_params(args.param)
        settings = settings_from(args)
        if args.command == "status":
            report = collect_status(args.pipeline, settings, params)
            if args.output == "json":
                print(json.dumps(report, indent=2, sort_keys=True))
            else:
                print(format_status(report), file=sys.stderr)
            return 0
        monitor = Monitor.serving(args.metrics)
        summary = run_pipeline(args.pipeline, settings, params, force=args.force, parallelism=args.parallelism,
                               wait_lock=args.wait_lock, monitor=monitor, json_logs=json_logs,
                               shm_soft=args.shm_soft, release_when_complete=args.hold_when_complete)
    except ImagekitError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except Exception as exc:  # a bug: one line, the trace in a file (and on stderr with --verbose)
        trace_file = write_crash_report(exc, sys.argv if argv is None else argv, "imagekit-runtime")
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error, a bug in imagekit: {type(exc).__name__}: {redact(str(exc))} "
              f"(the full trace is in {trace_file}; please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    if json_logs:
        log.info("%s", format_summary(summary))
    else:
        print(format_summary(summary), file=sys.stderr)
    if args.output == "json":
        print(json.dumps(summary.to_json(), indent=2 if not json_logs else None, sort_keys=True), flush=True)
    if summary.exit_code == 0 and args.hold_when_complete:
        hold_until_stopped()
    monitor.close()
    return summary.exit_code


def hold_until_stopped() -> None:
    """A complete shard stays up, idle, until SIGTERM or SIGINT: then exit 0."""
    log.info("shard complete; holding until stopped (SIGTERM)")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
