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
from pathlib import Path

from imagekit_core import contract
from imagekit_core.errors import EXIT_INTERNAL, ImagekitError, one_line, write_crash_report
from imagekit_core.flagtable import flag_values
from imagekit_core.redact import redact
from imagekit_core.spec import PipelineSpec, load_pipeline

from .checkpoint.store import CheckpointStore
from .data.copier import Copier
from .data.datastore import DataStore
from .observe import logs
from .observe.journal import Journal, new_run_id
from .observe.logs import StepEcho, StepLogs
from .observe.metrics import Monitor
from .run import shard_lock
from .run.conductor import Conductor
from .run.flags import RUN, STATUS, RunFlags, add_to_parser
from .run.options import Collaborators, RunOptions
from .run.preflight import check_environment
from .run.settings import hold_requested, resolve_environments, resolve_options
from .run.shard_run import run_shard
from .run.status import collect_status, format_status
from .run.summary import RunSummary, format_summary
from .states import StepState
from .supervise.client import Supervisor
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
    options = resolve_options(spec, flags)
    options.quiet_steps, options.json_logs, options.on_transition = quiet_steps, json_logs, on_transition
    monitor = monitor or Monitor()
    monitor.start(spec, options.layout)
    options.on_tick = monitor.health.beat
    with shard_lock.held(options.layout.shm_dir, flags.wait_lock,
                         f"shard {options.shard_index} of {spec.name}") as lock:
        check_environment(spec, options.layout)
        options.inherit_fds = (lock.fd,)
        with open_conductor(spec, options, monitor) as conductor:
            return run_shard(conductor)


@contextmanager
def open_conductor(spec: PipelineSpec, options: RunOptions, monitor: Monitor | None = None) -> Iterator[Conductor]:
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
        log_stream = stack.enter_context(open(os.devnull, "w")) if options.quiet_steps else \
            sys.stdout if options.json_logs else sys.stderr
        checkpoints = CheckpointStore.for_spec(spec, layout, options.shard_index, warnings)
        ssd = checkpoints.tier("ssd")
        step_logs = StepLogs(layout, log_stream, options.json_logs, ssd.root / contract.LOGS_DIR if ssd else None)
        supervisor = Supervisor(layout.supervisor_conf, socket_dir / "supervisor.sock", layout.supervisor_log,
                                pass_fds=options.inherit_fds)
        parts = Collaborators(
            store=DataStore(layout), checkpoints=checkpoints, copier=copier, journal=journal,
            host=StepProcesses(supervisor, watcher, Gates(gates_dir(layout.run_dir)), layout.run_dir),
            echo=lambda names: StepEcho.following(layout.logs_dir, names, step_logs, options.log_interval),
            environments=resolve_environments(options.flags), warnings=warnings)
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
        json_logs = logs.wants_json(os.environ)
        logs.configure(args.verbose, json_logs)
        flags = flag_values(RunFlags, vars(args))
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
    if summary.exit_code == 0 and hold_requested(flags):
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
