"""Processes a step leaves behind are killed when it ends.

supervisord starts every step in its own process group (its child calls setpgrp
before exec, so the group id is the step's pid). When the step's main process has
exited — exit 0, a failure, or stopped — the conductor sends SIGKILL to what is
left of that group: a `sleep 1000 &` or a forgotten server started by a step does
not outlive it, cannot write into its outputs after the commit check, and does
not hold the shard lock. A process that leaves the group (setsid, a double-forked
daemon) is found by the environment every step process starts with: any process
whose environment names this step and this run's directory (IMAGEKIT_STEP,
IMAGEKIT_RUN_DIR) is killed too. Only a process that also clears its environment
escapes that (a cgroup per step would catch it, where the runtime may make one).

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

from imagekit_core import contract

from ..observe.logs import read_tail

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


def _environ(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return environ.read()
    except OSError:  # gone, or another user's
        return b""


def kill_escaped(step: str, run_dir: Path) -> int:
    """SIGKILL every process started for this step of this run that left its process group; how many.
    (Reads each process's environment: ~2 ms for a few hundred processes, at each step's end.)"""
    marks = {f"{contract.STEP}={step}".encode(), f"{contract.RUN_DIR}={run_dir}".encode()}
    own = {os.getpid(), os.getppid()}
    killed = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in own:
            continue
        if marks <= set(_environ(pid).split(b"\0")):
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def kill_leftovers(supervisord_log: Path, step: str) -> bool:
    """Kill what remains of the step's process group after its main process exited."""
    pid = spawned_pid(supervisord_log, step)
    return pid is not None and kill_group(pid)
