"""Why a step attempt failed, in words a user can act on: its exit, a full shared memory, its last log lines."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..data.shm_budget import ENOSPC_TEXT, shm_full_message, shm_usage
from ..observe.logs import read_tail
from ..supervise.client import ProcessInfo

FULL_BELOW = 64 * 1024  # free bytes under which a shm counts as full even when the step logged nothing
LOG_TAIL_BYTES = 16384


def succeeded(info: ProcessInfo) -> bool:
    return info.state == "EXITED" and info.exit_status == 0


def exit_code_of(info: ProcessInfo) -> int:
    """The exit status supervisord saw, or -1 when the process did not exit on its own."""
    return info.exit_status if info.state == "EXITED" else -1


def exit_reason(info: ProcessInfo, supervisor_log: Path) -> str:
    """How an attempt that did not succeed ended: 'exited with status 3', 'was terminated by SIGKILL', …"""
    if info.state == "EXITED" and info.exit_status < 0:
        return supervisor_exit_reason(supervisor_log, info.name) or "was killed by a signal"
    if info.state == "EXITED":
        return f"exited with status {info.exit_status}"
    if info.state == "FATAL":
        return f"could not be started ({info.description or 'spawn error'}; see {supervisor_log})"
    return f"ended in supervisord state {info.state} ({info.description})"


def supervisor_exit_reason(supervisor_log: Path, name: str) -> str:
    """supervisord's own words for how a process ended ("was terminated by SIGKILL"), from its log's tail."""
    tail = read_tail(supervisor_log, LOG_TAIL_BYTES)
    marker = f"exited: {name} ("
    for line in reversed(tail.splitlines()):
        if marker in line:
            detail = line.split(marker, 1)[1].split(";")[0].rstrip(")")
            return f"was {detail}" if detail.startswith("terminated") else detail
    return ""


def enospc_message(log_lines: Sequence[str], shm_dir: Path, committed_bytes: int,
                   usage: Callable[[Path], tuple[int, int]] = shm_usage) -> str:
    """If the attempt failed because shm is full (it logged ENOSPC, or shm is all but full), say so with
    the sizes and the fix; otherwise ''. Call it before the staging is discarded: it shows a full shm."""
    logged = any(ENOSPC_TEXT in line for line in log_lines)
    size, used = usage(shm_dir)
    if not logged and not (size and size - used < FULL_BELOW):
        return ""
    return shm_full_message(shm_dir, size, used, committed_bytes)


def failure_message(step: str, attempts: int, reason: str) -> str:
    """The one line a failed pipeline ends with."""
    return f"step {step} failed after {attempts} attempt{'s' if attempts != 1 else ''}: {reason}"


def log_tail(step: str, log_file: Path, lines: Sequence[str]) -> str:
    """The failing step's last log lines, prefixed as its live output was; '' when it printed nothing."""
    if not lines:
        return ""
    return f"last lines of {log_file}:\n" + "\n".join(f"  [{step}] {line}" for line in lines)
