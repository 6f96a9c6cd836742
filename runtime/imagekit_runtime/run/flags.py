"""The flags of a run, declared once (flagtable.py): the image's entrypoint (argparse, main.py) and `imagekit
run|status` (typer, imagekit/cli/run.py) both render this table, and both hand the values on as one RunFlags.

A flag left out means "not given": settings.py then looks at the IMAGEKIT_* variable and the pipeline, in
that order, so a default that depends on them is said in the help, not set here.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from imagekit_core import contract
from imagekit_core.flagtable import Flag
from imagekit_core.flagtable import add_to_parser as add_flags

from ..data.shm_budget import SHM_SOFT_HELP
from .shard_lock import DEFAULT_WAIT_SECONDS

RUN, STATUS = "run", "status"


FLAGS: tuple[Flag, ...] = (
    Flag("shm_dir", f"shared-memory directory [default: ${contract.SHM_DIR}, else /dev/shm/imagekit-UID on a host, "
                    f"{contract.DEFAULT_SHM_DIR} in the image]"),
    Flag("ssd", f"SSD checkpoint directory [default: ${contract.SSD_DIR}, else the pipeline's checkpoint.ssd]"),
    Flag("pv", f"PV checkpoint directory [default: ${contract.PV_DIR}, else the pipeline's checkpoint.pv]"),
    Flag("results", f"results directory [default: ${contract.RESULTS_DIR}, else <pv>/results/<shard>]"),
    Flag("run_dir", f"journal, logs and supervisord config [default: ${contract.RUN_DIR}, else <shm>/<pipeline>/"
                    f"shard-<i>/run]"),
    Flag("shard_index", f"this shard [default: ${contract.SHARD_INDEX}, else the pod ordinal, else 0]", "int"),
    Flag("shard_count", f"number of shards [default: ${contract.SHARD_COUNT}, else the pipeline's shards]", "int"),
    Flag("param", "KEY=VALUE: override a pipeline param (repeatable)", "list", metavar="KEY=VALUE"),
    Flag("no_checkpoints", "write no SSD or PV checkpoints", "switch"),
    Flag("deps_root", f"prebuilt step dependencies [default: ${contract.DEPS_ROOT} (images), else venvs cached "
                      "per step]", commands=frozenset({RUN})),
    Flag("force", "run again even if the shard is complete", "switch", frozenset({RUN})),
    Flag("parallelism", "compute-bound (cpu) steps at once [default: the pipeline's parallelism.cpu, else the CPUs "
                        "this may use]", "int", frozenset({RUN})),
    Flag("wait_lock", f"wait this long for another run of the same shard to end, then exit 3 "
                      f"[default: {DEFAULT_WAIT_SECONDS:g}]", "float", frozenset({RUN}), metavar="SECONDS"),
    Flag("shm_soft", SHM_SOFT_HELP, "switch", frozenset({RUN})),
    Flag("metrics", f"serve Prometheus metrics, {contract.HEALTHZ_PATH} and {contract.READYZ_PATH} on ADDR: PORT "
                    f"(loopback) or HOST:PORT (pods: :{contract.METRICS_PORT}) [default: off]",
         commands=frozenset({RUN}), metavar="ADDR"),
    Flag("hold_when_complete", f"after success, wait for SIGTERM instead of exiting (StatefulSet pods restart "
                               f"exited containers) [default: ${contract.HOLD_WHEN_COMPLETE}]", "switch",
         frozenset({RUN})),
    Flag("output", "text or json (the summary, or the status, as JSON on stdout)", "choice", choices=("text", "json"),
         short="-o"),
)


@dataclass
class RunFlags:
    """What a run or status was given, as parsed; None (or False, or empty) where a flag was left out."""

    shm_dir: str | None = None
    ssd: str | None = None
    pv: str | None = None
    results: str | None = None
    run_dir: str | None = None
    shard_index: int | None = None
    shard_count: int | None = None
    param: list[str] = field(default_factory=list)
    no_checkpoints: bool = False
    deps_root: str | None = None
    force: bool = False
    parallelism: int | None = None
    wait_lock: float = DEFAULT_WAIT_SECONDS
    shm_soft: bool = False
    metrics: str | None = None
    hold_when_complete: bool = False
    output: str = "text"



def flags_of(command: str) -> list[Flag]:
    """The flags `command` takes: those named for it, and those named for no command in particular (both)."""
    return [flag for flag in FLAGS if not flag.commands or command in flag.commands]


def add_to_parser(parser: argparse.ArgumentParser, command: str) -> None:
    """The command's flags on an argparse parser (the image's entrypoint)."""
    add_flags(parser, flags_of(command))
