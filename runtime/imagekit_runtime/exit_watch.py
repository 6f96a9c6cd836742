"""Wake the conductor the moment a step process ends, instead of polling supervisord on a timer.

Each running step's pid gets a pidfd (Linux ≥ 5.3), which becomes readable when the
process exits; a self-pipe registered with signal.set_wakeup_fd wakes the same
select() on SIGTERM or SIGINT. supervisord stays the owner of the processes: the
conductor asks it for the exit status once woken. With nothing else due, the conductor sleeps
here without a timeout: no wake-ups while steps work.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal


def zombie_exit_status(pid: int) -> int | None:
    """The wait status of a process that has exited but is not reaped yet (/proc/<pid>/stat, field 52,
    Linux ≥ 3.5); None when it is not a zombie (still running, or already reaped: ask supervisord)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is the state (field 3); field 52, exit_code, is fields[49]
    if len(fields) < 50 or fields[0] != b"Z":
        return None
    return int(fields[49])


class ExitWatcher:
    def __init__(self) -> None:
        self._pidfds: dict[str, int] = {}
        self._fired: set[str] = set()
        self.supported = hasattr(os, "pidfd_open")
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        try:
            self._previous_wakeup_fd: int | None = signal.set_wakeup_fd(self._wake_write)
        except ValueError:  # not the main thread: signals are not ours to watch
            self._previous_wakeup_fd = None

    def watching(self, name: str) -> bool:
        return name in self._pidfds or name in self._fired

    def watch(self, name: str, pid: int) -> None:
        """Watch the step's process; pid 0 (it ended before its pid was known) counts as ended already."""
        if not self.supported or self.watching(name):
            return
        if pid <= 0:
            self._fired.add(name)
            return
        try:
            self._pidfds[name] = os.pidfd_open(pid)
        except ProcessLookupError:
            self._fired.add(name)  # already gone
        except OSError:
            self.supported = False  # e.g. an old kernel: fall back to polling

    def forget(self, name: str) -> None:
        self._fired.discard(name)
        fd = self._pidfds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def fired(self) -> list[str]:
        """The watched processes that ended (until forgotten)."""
        return sorted(self._fired)

    def wait(self, timeout: float | None, extra_fd: int | None = None) -> bool:
        """Sleep until a watched process exits, a signal arrives, extra_fd is readable, or timeout seconds
        pass (None: no timeout). True when extra_fd is readable."""
        if self._fired:
            timeout = 0.001 if timeout is None else min(timeout, 0.001)  # ended, maybe not reaped yet
        poller = select.poll()  # not select(): a run may watch more than 1024 fds
        for fd in (*self._pidfds.values(), self._wake_read, *([extra_fd] if extra_fd is not None else [])):
            poller.register(fd, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)}
        if self._wake_read in readable:
            try:
                while os.read(self._wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        for name, fd in list(self._pidfds.items()):
            if fd in readable:
                os.close(fd)
                del self._pidfds[name]
                self._fired.add(name)
        return extra_fd is not None and extra_fd in readable

    def close(self) -> None:
        for name in list(self._pidfds):
            self.forget(name)
        if self._previous_wakeup_fd is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._previous_wakeup_fd)
        os.close(self._wake_read)
        os.close(self._wake_write)
