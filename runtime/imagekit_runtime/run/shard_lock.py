"""One run per shard at a time: an flock on `<shm>/<pipeline>/shard-<i>/run.lock`.

The conductor takes the lock before it touches the shard's shared memory and hands
the locked descriptor to supervisord, which hands it to every step it spawns: the
lock is one open file description shared by all of them, so the kernel releases it
only when the last process of the run has closed it — when the conductor, supervisord
and every step (and whatever a step left running) are gone. A conductor killed with
SIGKILL therefore keeps the shard locked until its steps have ended too, and a resume
started at once waits for them instead of sharing their shm directory.

The descriptor is moved to a number of at least INHERITED_FD_FLOOR: supervisord
closes descriptors 3 … minfds-1 (256, supervisor_conf.py) in each child, and this one
must survive. The holder's pid is written into the file for the message a second
run prints when it gives up waiting (exit 3).
"""
from __future__ import annotations

import fcntl
import logging
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagekit_core.errors import EnvironmentMissing

from ..supervise.config import MINFDS

log = logging.getLogger("imagekit.runtime")

LOCK_FILE = "run.lock"
INHERITED_FD_FLOOR = 999  # above supervisord's minfds (256): survives its close of 3 … minfds-1
DEFAULT_WAIT_SECONDS = 30.0


class ShardBusy(EnvironmentMissing):
    """Another run of the same shard holds the lock (exit 3)."""


@dataclass
class ShardLock:
    path: Path
    fd: int  # close-on-exec here; passed explicitly to supervisord (pass_fds), which its steps inherit

    def release(self) -> None:
        os.close(self.fd)


def _fd_floor() -> int:
    """INHERITED_FD_FLOOR, raising the soft RLIMIT_NOFILE above it when the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft > INHERITED_FD_FLOOR:
        return INHERITED_FD_FLOOR
    if hard == resource.RLIM_INFINITY or hard > INHERITED_FD_FLOOR + 1:
        resource.setrlimit(resource.RLIMIT_NOFILE, (INHERITED_FD_FLOOR + 25, hard))
        return INHERITED_FD_FLOOR
    if hard - 1 > MINFDS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard - 1
    raise EnvironmentMissing(f"the open-files limit ({hard}) leaves no descriptor above supervisord's "
                             f"{MINFDS} for the shard lock (fix: ulimit -n 1024 or more)")


def _open_high(path: Path) -> int:
    opened = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        return fcntl.fcntl(opened, fcntl.F_DUPFD_CLOEXEC, _fd_floor())
    finally:
        os.close(opened)


def _holder(path: Path) -> str:
    try:
        text = path.read_text().strip()
    except OSError:
        return "another run"
    if not text.isdigit():
        return "another run"
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return f"processes of the run of pid {text} (which has exited)"
    except PermissionError:
        pass
    return f"pid {text}"


def _try_lock(path: Path) -> int | None:
    """A locked descriptor of the current lock file, or None when another run holds it."""
    fd = _open_high(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    mine = os.fstat(fd)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    if current is None or (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino):
        os.close(fd)  # the file was removed or replaced while we waited: lock the one that is there now
        return _try_lock(path)
    return fd


def acquire(shm_dir: Path, wait_seconds: float, what: str, *, poll: float = 0.05) -> ShardLock:
    """Lock the shard; wait up to wait_seconds for a running one to end, then raise ShardBusy naming its pid."""
    shm_dir.mkdir(parents=True, exist_ok=True)
    path = shm_dir / LOCK_FILE
    deadline = time.monotonic() + max(0.0, wait_seconds)
    announced = False
    while (fd := _try_lock(path)) is None:
        if time.monotonic() >= deadline:
            raise ShardBusy(f"{what} is being run by {_holder(path)} ({path} is locked; waited {wait_seconds:g}s) "
                            "(fix: wait for that run to end, or pass --wait-lock SECONDS)")
        if not announced:
            log.info("%s is being run by %s: waiting up to %gs for it to end", what, _holder(path), wait_seconds)
            announced = True
        time.sleep(poll)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return ShardLock(path, fd)


@contextmanager
def held(shm_dir: Path, wait_seconds: float, what: str) -> Iterator[ShardLock]:
    lock = acquire(shm_dir, wait_seconds, what)
    try:
        yield lock
    finally:
        lock.release()
