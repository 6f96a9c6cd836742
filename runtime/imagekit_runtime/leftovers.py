"""Processes a step leaves behind are killed when it ends.

supervisord starts every step in its own process group (its child calls setpgrp
before exec, so the group id is the step's pid). When the step's main process has
exited — exit 0, a failure, or stopped — the conductor sends SIGKILL to what is
left of that group: a `sleep 1000 &` or a forgotten server started by a step does
not outlive it, cannot write into its outputs after the commit check, and does
not hold the shard lock. A process that deliberately leaves the group (setsid)
is out of reach, which is why the copiers never follow links either.

The pid comes from supervisord's own log line ("spawned: 'step' with pid N"): it
is written before the conductor learns the step is running, so even a step that
exits at once is covered. The group is killed within milliseconds of the exit; for
its id to name another group by then, the kernel would have to cycle through pid_max.
"""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from .logs import read_tail

TAIL_BYTES = 65536  # supervisord.log holds only supervisord's own lines: a few per step attempt


def spawned_pid(supervisord_log: Path, step: str) -> int | None:
    """The pid of the step's latest spawn, from supervisord's log; None if there is none."""
    tail = read_tail(supervisord_log, TAIL_BYTES)
    found = re.findall(rf"spawned: '{re.escape(step)}' with pid (\d+)", tail)
    return int(found[-1]) if found else None


def kill_group(pgid: int) -> bool:
    """SIGKILL every process of the group; False when none was left."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False  # never our own group, never init's
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def kill_leftovers(supervisord_log: Path, step: str) -> bool:
    """Kill what remains of the step's process group after its main process exited."""
    pid = spawned_pid(supervisord_log, step)
    return pid is not None and kill_group(pid)
