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

from imagekit_core import contract
from imagekit_core.errors import EXIT_INTERNAL, ImagekitError, one_line, write_crash_report
from imagekit_core.flagtable import flag_values
from imagekit_core.redact import redact
from imagekit_core.spec import PipelineSpec, load_pipeline

from .checkpoint.store import CheckpointStore
from .data.copier import Copier
from .data.datastore import DataStore
from .observe import logformat
from .observe.journal import Journal, new_run_id
from .observe.log_watch import StepEcho
from .observe.logs import StepLogs
from .observe.monitoring import Monitor
from .run import shard_lock
from .run.conductor import Conductor
from .run.flags import RUN, STATUS, RunFlags, add_to_parser
from .run.options import Collaborators, RunOptions
from .run.preflight import check_environment
from .run.settings import parse_params, resolve_environments, resolve_layout, resolve_shard
from .run.shard_run import run_shard
from .run.status import collect_status, format_status
from .run.summary import RunSummary, format_summary
from .states import StepState
from .supervise.client import Supervisor
from .supervise.environments import EnvironmentProvider
from .supervise.exit_watch import ExitWatcher
from .supervise.gates import Gates, gates_dir
from .supervise.processes import StepProcesses

log = logging.getLogger("imagekit.runtime")


def run_pipeline(pipeline: Path, flags: RunFlags, *, quiet_steps: bool = False,
                 on_transition: Callable[[str, StepState, StepState], None] | None = None,
                 monitor: Monitor | None = None, json_logs: bool = False) -> RunSummary:
    """Lock the shard (waiting up to --wait-lock seconds for a run of it to end), check the environment, run.
    A monitor (metrics, health) is fed the run's journal and the conductor's heartbeat."""
    spec = load_pipeline(pipeline)
    params = parse_params(flags.param)
    shard_index, shard_count = resolve_shard(spec, flags)
    layout = resolve_layout(spec, flags, shard_index)
    monitor = monitor or Monitor()
    monitor.start(spec, layout)
    with shard_lock.held(layout.shm_dir, flags.wait_lock, f"shard {shard_index} of {spec.name}") as lock:
        check_environment(spec, layout)
        options = RunOptions(layout=layout, shard_index=shard_index, shard_count=shard_count, params=params,
                             parallelism=flags.parallelism, force=flags.force, on_tick=monitor.health.beat,
                             on_transition=on_transition, inherit_fds=(lock.fd,), shm_soft=flags.shm_soft,
                             release_when_complete=flags.hold_when_complete)
        with open_conductor(spec, options, resolve_environments(flags), monitor,
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
    for command, what in ((RUN, "run (or resume) the pipeline"),
                          (STATUS, "where each data item is and which steps would run")):
        sub = commands.add_parser(command, help=what)
        sub.add_argument("pipeline", type=Path, help="pipeline.yaml or its directory")
        add_to_parser(sub, command)
        sub.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    monitor: Monitor | None = None
    try:
        json_logs = logformat.wants_json(os.environ)
        logformat.configure(args.verbose, json_logs)
        flags = flag_values(RunFlags, vars(args))
        flags.hold_when_complete = flags.hold_when_complete or contract.is_hold_requested(
            os.environ.get(contract.HOLD_WHEN_COMPLETE))
        if args.command == STATUS:
            report = collect_status(args.pipeline, flags)
            if flags.output == "json":
                print(json.dumps(report, indent=2, sort_keys=True))
            else:
                print(format_status(report), file=sys.stderr)
            return 0
        monitor = Monitor.serving(flags.metrics)
        summary = run_pipeline(args.pipeline, flags, monitor=monitor, json_logs=json_logs)
    except ImagekitError as exc:
        print(f"error: {one_line(redact(str(exc)))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    except Exception as exc:  # a bug: one line, the trace in a file (and on stderr with --verbose)
        trace_file = write_crash_report(exc, sys.argv if argv is None else argv, "imagekit-runtime")
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error, a bug in imagekit: {type(exc).__name__}: {one_line(redact(str(exc)))} "
              f"(the full trace is in {trace_file}; please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    if json_logs:
        log.info("%s", format_summary(summary))
    else:
        print(format_summary(summary), file=sys.stderr)
    if flags.output == "json":
        print(json.dumps(summary.to_json(), indent=2 if not json_logs else None, sort_keys=True), flush=True)
    if summary.exit_code == 0 and flags.hold_when_complete:
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
