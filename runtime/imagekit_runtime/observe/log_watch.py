"""Which step logs grew, told by inotify: step output is echoed when it is written, with no timer.

One watch on the run's logs directory (IN_MODIFY) reports every write to <step>.log by name. A
step that writes all the time would wake the conductor at every write, so after an echo the watch
rests for `rest_seconds` (what was written meanwhile is echoed at the next wake-up). A write is
echoed `lag_seconds` after it is noticed, not at once: a step's last line comes a moment before its
end (or its step.done()), and the conductor is then back in its sleep, free to hand the outputs
over, instead of busy echoing.
Where inotify is missing (not Linux), `fd` is None and the conductor echoes logs once a second.
"""
from __future__ import annotations

import ctypes
import os
import struct
import time
from pathlib import Path

from .logs import LogFollower, StepLogs

IN_MODIFY = 0x00000002
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then len bytes of NUL-padded name
LOG_SUFFIX = ".log"


class LogWatch:
    def __init__(self, directory: Path, rest_seconds: float = 0.05, lag_seconds: float = 0.005) -> None:
        self.rest_seconds = rest_seconds
        self.lag_seconds = lag_seconds
        self.fd: int | None = None
        self._rest_until = 0.0  # no echo before (after an echo, or a lag after the first write noticed)
        self._changed: set[str] = set()
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            directory.mkdir(parents=True, exist_ok=True)
            if libc.inotify_add_watch(fd, os.fsencode(directory), IN_MODIFY) < 0:
                os.close(fd)
                return
            self.fd = fd
        except (OSError, AttributeError):
            self.fd = None

    def watched_fd(self) -> int | None:
        """The fd to wait on now, or None while resting or with an echo due already (or without inotify)."""
        return self.fd if self.fd is not None and not self._changed and time.monotonic() >= self._rest_until else None

    def rest_remaining(self) -> float | None:
        """Seconds until the watch is waited on again, when resting with something to echo."""
        if not self._changed:
            return None
        return max(0.0, self._rest_until - time.monotonic())

    def read_events(self) -> None:
        """Note the logs named by the pending events (call when the fd is readable)."""
        if self.fd is None:
            return
        if not self._changed:
            self._rest_until = max(self._rest_until, time.monotonic() + self.lag_seconds)
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            offset = 0
            while offset + EVENT_HEADER.size <= len(data):
                _, _, _, length = EVENT_HEADER.unpack_from(data, offset)
                name = data[offset + EVENT_HEADER.size:offset + EVENT_HEADER.size + length].rstrip(b"\0").decode(
                    errors="replace")
                offset += EVENT_HEADER.size + length
                if name.endswith(LOG_SUFFIX):
                    self._changed.add(name[:-len(LOG_SUFFIX)])

    def take_changed(self) -> set[str]:
        """The steps whose logs grew since the last call, if the watch is not resting; then it rests."""
        if not self._changed or time.monotonic() < self._rest_until:
            return set()
        changed, self._changed = self._changed, set()
        self._rest_until = time.monotonic() + self.rest_seconds
        return changed

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class StepEcho:
    """Every running step's log echoed, prefixed with its name, as it is written (no timer with inotify)."""

    def __init__(self, logs_dir: Path, followers: dict[str, LogFollower], fallback_interval: float = 1.0) -> None:
        self.followers = followers
        self.watch = LogWatch(logs_dir)
        self.fallback_interval = fallback_interval

    @classmethod
    def following(cls, logs_dir: Path, names: list[str], step_logs: StepLogs, fallback_interval: float) -> StepEcho:
        """Echo each step's log from its current end (earlier runs' lines are not repeated), as step_logs says."""
        return cls(logs_dir, {name: step_logs.follow(name) for name in names}, fallback_interval)

    def wake_fd(self) -> int | None:
        """The fd whose readability means a log grew (None while resting, or without inotify)."""
        return self.watch.watched_fd()

    def timeout(self) -> float | None:
        """When to wake for the echo at the latest: without inotify, every fallback_interval seconds."""
        if self.watch.fd is None:
            return self.fallback_interval
        return self.watch.rest_remaining()

    def after_wait(self, fd_readable: bool) -> None:
        if fd_readable:
            self.watch.read_events()
        changed = self.watch.take_changed() if self.watch.fd is not None else set(self.followers)
        for name in changed:
            if name in self.followers:
                self.followers[name].pump()

    def pump(self, name: str) -> None:
        self.followers[name].pump()

    def pump_all(self, final: bool = False) -> None:
        for follower in self.followers.values():
            follower.pump(final=final)

    def last_lines(self, name: str, count: int) -> list[str]:
        follower = self.followers.get(name)
        return follower.last_lines(count) if follower else []

    def close(self) -> None:
        self.watch.close()
