"""Wake the conductor the moment a step process ends, instead of polling supervisord on a timer.

Each running step's pid gets a pidfd (Linux ≥ 5.3), which becomes readable when the
process exits; a self-pipe registered with signal.set_wakeup_fd wakes the same
poll() on SIGTERM or SIGINT (and `wake()`, from another thread). A step that declares
its outputs complete before it exits (step.done()) writes its pid into the run's done
FIFO ($IMAGEKIT_DONE_FIFO), which the same poll() watches: the commit need not wait for
the kernel to tear the process down (milliseconds for a process that mapped much shm). supervisord stays the owner of the processes: the
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
        self._done_fd: int | None = None  # the done FIFO, held open read-write (never an end-of-file)
        self._declared: list[int] = []    # pids read from it, in order
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

    def listen_for_done(self, fifo: str) -> None:
        """Create the done FIFO at `fifo` (a stale one replaced) and watch it."""
        self.stop_listening()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(fifo)
        os.mkfifo(fifo, 0o600)
        self._done_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    def stop_listening(self) -> None:
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None

    def declared(self) -> list[int]:
        """The pids that declared their step's outputs complete since the last call."""
        pids, self._declared = self._declared, []
        return pids

    def wake(self) -> None:
        """End the current (or next) wait at once; callable from any thread."""
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_write, b"w")

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
        listened = [fd for fd in (self._done_fd, extra_fd) if fd is not None]
        for fd in (*self._pidfds.values(), self._wake_read, *listened):
            poller.register(fd, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(None if timeout is None else timeout * 1000)}
        if self._done_fd is not None and self._done_fd in readable:
            self._read_declarations()
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

    def _read_declarations(self) -> None:
        """Each declaration is one write of "<pid>\\n" (atomic: shorter than PIPE_BUF)."""
        assert self._done_fd is not None
        data = b""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._done_fd, 4096):
                data += chunk
        self._declared.extend(int(line) for line in data.split() if line.isdigit())

    def close(self) -> None:
        self.stop_listening()
        for name in list(self._pidfds):
            self.forget(name)
        if self._previous_wakeup_fd is not None:
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(self._previous_wakeup_fd)
        os.close(self._wake_read)
        os.close(self._wake_write)
