"""`imagekit-runtime` / `python3 -m imagekit_runtime`: the image's entrypoint.

    run PIPELINE     run the pipeline's steps to completion (or resume them)
    status PIPELINE  where each data item is (shm, ssd, pv) and which steps would run
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from . import shard_lock
from .conductor import Conductor, RunOptions, RunSummary
from .errors import ImagekitError
from .preflight import check_environment
from .settings import RunSettings, parse_params, resolve_environments, resolve_layout, resolve_shard
from .spec import format_size, load_pipeline
from .states import StepState
from .status import collect_status, format_status

log = logging.getLogger("imagekit.runtime")


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", type=Path, help="pipeline.yaml or its directory")
    parser.add_argument("--shm-dir", help="shared-memory directory (default /dev/shm/imagekit, or $IMAGEKIT_SHM_DIR)")
    parser.add_argument("--ssd", help="SSD checkpoint directory (default: checkpoint.ssd, or $IMAGEKIT_SSD_DIR)")
    parser.add_argument("--pv", help="PV checkpoint directory (default: checkpoint.pv, or $IMAGEKIT_PV_DIR)")
    parser.add_argument("--results", help="results directory (default <pv>/results/<shard>, or $IMAGEKIT_RESULTS_DIR)")
    parser.add_argument("--run-dir", help="journal, logs and supervisord config (default <shm>/…/run)")
    parser.add_argument("--shard-index", type=int, help="this shard (default $IMAGEKIT_SHARD_INDEX or the pod ordinal)")
    parser.add_argument("--shard-count", type=int, help="number of shards (default: the pipeline's `shards`)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="override a pipeline param")
    parser.add_argument("--no-checkpoints", action="store_true", help="write no SSD or PV checkpoints")
    parser.add_argument("--deps-root", help="prebuilt step dependencies (in images: $IMAGEKIT_DEPS_ROOT)")


def settings_from(args: argparse.Namespace) -> RunSettings:
    return RunSettings(shm_dir=args.shm_dir, ssd=args.ssd, pv=args.pv, results=args.results, run_dir=args.run_dir,
                       shard_index=args.shard_index, shard_count=args.shard_count, deps_root=args.deps_root,
                       no_checkpoints=args.no_checkpoints)


def run_pipeline(pipeline: Path, settings: RunSettings, params: dict[str, str], *, force: bool = False,
                 parallelism: int | None = None, quiet_steps: bool = False,
                 on_transition: Callable[[str, StepState, StepState], None] | None = None,
                 wait_lock: float = shard_lock.DEFAULT_WAIT_SECONDS) -> RunSummary:
    """Lock the shard (waiting up to wait_lock seconds for a run of it to end), check the environment, run."""
    spec = load_pipeline(pipeline)
    shard_index, shard_count = resolve_shard(spec, settings)
    layout = resolve_layout(spec, settings, shard_index)
    with shard_lock.held(layout.shm_dir, wait_lock, f"shard {shard_index} of {spec.name}") as lock:
        check_environment(spec, layout)
        options = RunOptions(layout=layout, shard_index=shard_index, shard_count=shard_count, params=params,
                             parallelism=parallelism, force=force, quiet_steps=quiet_steps,
                             on_transition=on_transition, inherit_fds=(lock.fd,))
        return Conductor(spec, options, resolve_environments(settings)).run()


def format_summary(summary: RunSummary) -> str:
    lines = [f"{summary.pipeline} shard {summary.shard_index}/{summary.shard_count}: {summary.status} "
             f"in {summary.wall_seconds:.2f}s (exit {summary.exit_code}); peak shm {format_size(summary.peak_shm_bytes)}; "
             f"results in {summary.results_dir}"]
    lines.append(f"  {'step':<20} {'state':<10} {'exit':>4} {'tries':>5} {'wall s':>8} {'in':>10} {'out':>10}")
    for step in summary.steps:
        exit_text = "-" if step.exit_code is None else str(step.exit_code)
        lines.append(f"  {step.name:<20} {step.state.value:<10} {exit_text:>4} {step.attempts:>5} "
                     f"{step.wall_seconds:>8.2f} {format_size(step.bytes_in):>10} {format_size(step.bytes_out):>10}")
    for warning in summary.warnings:
        lines.append(f"  warning: {warning}")
    if summary.message:
        lines.append(f"  {summary.message}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagekit-runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run (or resume) the pipeline")
    add_location_arguments(run)
    run.add_argument("--force", action="store_true", help="run again even if this shard is complete")
    run.add_argument("--parallelism", type=int, help="override the pipeline's parallelism")
    run.add_argument("--wait-lock", type=float, default=shard_lock.DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                     help="wait this long for another run of the same shard to end, then exit 3 "
                          f"(default {shard_lock.DEFAULT_WAIT_SECONDS:g})")
    run.add_argument("--output", choices=["text", "json"], default="text")
    run.add_argument("--hold-when-complete", action="store_true",
                     default=os.environ.get("IMAGEKIT_HOLD_WHEN_COMPLETE", "") not in ("", "0", "false"),
                     help="after success, wait for SIGTERM instead of exiting (StatefulSet pods restart exited "
                          "containers); default $IMAGEKIT_HOLD_WHEN_COMPLETE")
    run.add_argument("--verbose", "-v", action="store_true")
    status = commands.add_parser("status", help="where each data item is and which steps would run")
    add_location_arguments(status)
    status.add_argument("--output", choices=["text", "json"], default="text")
    status.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        params = parse_params(args.param)
        settings = settings_from(args)
        if args.command == "status":
            report = collect_status(args.pipeline, settings, params)
            if args.output == "json":
                print(json.dumps(report, indent=2, sort_keys=True))
            else:
                print(format_status(report), file=sys.stderr)
            return 0
        summary = run_pipeline(args.pipeline, settings, params, force=args.force, parallelism=args.parallelism,
                               wait_lock=args.wait_lock)
    except ImagekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover
        return 130
    print(format_summary(summary), file=sys.stderr)
    if args.output == "json":
        print(json.dumps(summary.to_json(), indent=2, sort_keys=True), flush=True)
    if summary.exit_code == 0 and args.hold_when_complete:
        hold_until_stopped()
    return summary.exit_code


def hold_until_stopped() -> None:
    """A complete shard stays up, idle, until SIGTERM or SIGINT: then exit 0."""
    print("shard complete; holding until stopped (SIGTERM)", file=sys.stderr, flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(3600):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
