"""Wake the conductor the moment a step process ends, instead of polling supervisord on a timer.

Each running step's pid gets a pidfd (Linux ≥ 5.3), which becomes readable when the
process exits; a self-pipe registered with signal.set_wakeup_fd wakes the same
select() on SIGTERM or SIGINT. supervisord stays the owner of the processes: the
conductor asks it for the exit status once woken.
"""
from __future__ import annotations

import contextlib
import os
import select
import signal


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
        if not self.supported or pid <= 0 or self.watching(name):
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

    @property
    def pending(self) -> bool:
        """A process has ended but supervisord may not have reaped it yet: look again very soon."""
        return bool(self._fired)

    def wait(self, timeout: float) -> None:
        """Sleep until a watched process exits, a signal arrives, or timeout seconds pass."""
        if self._fired:
            timeout = min(timeout, 0.001)
        readable, _, _ = select.select([*self._pidfds.values(), self._wake_read], [], [], timeout)
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

    def close(self) -> None:
        for name in list(self._pidfds):
            self.forget(name)
        if self._previous_wakeup_fd is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._previous_wakeup_fd)
        os.close(self._wake_read)
        os.close(self._wake_write)
