"""Step output and the runtime's log lines: how a line looks (plain text on stderr, or with
IMAGEKIT_LOG_FORMAT=json one JSON object per line on stdout, where cluster log collectors read them), each
step's log file followed and echoed when written, a copy kept beside the SSD checkpoints so a post-mortem
survives the pod, a log's tail read for a failure's diagnosis.

Which logs grew is told by inotify: one watch on the run's logs directory (IN_MODIFY) reports every write
to <step>.log by name. A step that writes all the time would wake the conductor at every write, so after an
echo the watch rests for `rest_seconds` (what was written meanwhile is echoed at the next wake-up). A write
is echoed `lag_seconds` after it is noticed, not at once: a step's last line comes a moment before its end
(or its step.done()), and the conductor is then back in its sleep, free to hand the outputs over, instead of
busy echoing. Where inotify is missing (not Linux), the conductor echoes logs once a second.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.redact import RedactingFilter

from ..layout import RunLayout

RUNTIME_STEP = ""  # the `step` of the runtime's own lines


def wants_json(environ: Mapping[str, str]) -> bool:
    value = environ.get(contract.LOG_FORMAT, "") or "text"
    if value not in ("text", contract.LOG_FORMAT_JSON):
        raise UsageError(f"${contract.LOG_FORMAT}={value!r}: use {contract.LOG_FORMAT_JSON} or text")
    return value == contract.LOG_FORMAT_JSON


def json_line(level: str, step: str, message: str, when: float | None = None) -> str:
    moment = datetime.now(UTC) if when is None else datetime.fromtimestamp(when, UTC)
    return json.dumps({"time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       "level": level, "step": step, "message": message}, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json_line(record.levelname.lower(), RUNTIME_STEP, message, record.created)


def configure(verbose: bool, as_json: bool) -> None:
    """The runtime's logging: one handler on the root logger."""
    handler = logging.StreamHandler(sys.stdout if as_json else sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def step_line_renderer(step: str, as_json: bool) -> Callable[[str], str]:
    """How an echoed line of a step's output is written (without its newline)."""
    if as_json:
        return lambda line: json_line("info", step, line)
    prefix = f"[{step}]"
    return lambda line: f"{prefix} {line}"


log = logging.getLogger("imagekit.runtime")


def read_tail(path: Path, size: int) -> str:
    """The last `size` bytes of a log as text ("" when it can't be read)."""
    try:
        with open(path, "rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - size))
            return log_file.read().decode(errors="replace")
    except OSError:
        return ""


@dataclass
class LogFollower:
    path: Path
    render: Callable[[str], str]  # an echoed line, without its newline
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    keep: Path | None = None      # where to append a copy of what the step writes (the SSD)
    offset: int = 0
    partial: bytes = b""
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    def start_at_end(self) -> None:
        """Skip what earlier runs wrote to this file."""
        try:
            self.offset = self.path.stat().st_size
        except FileNotFoundError:
            self.offset = 0

    def pump(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as log_file:
                log_file.seek(self.offset)
                chunk = log_file.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        if chunk and self.keep is not None:
            self._keep(chunk)
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            line = raw.decode(errors="replace")
            self.recent.append(line)
            self.stream.write(self.render(line) + "\n")
        if lines:
            self.stream.flush()

    def last_lines(self, count: int = 20) -> list[str]:
        return list(self.recent)[-count:]

    def _keep(self, chunk: bytes) -> None:
        assert self.keep is not None
        try:
            self.keep.parent.mkdir(parents=True, exist_ok=True)
            with open(self.keep, "ab") as kept:
                kept.write(chunk)
        except OSError as exc:  # a full or missing SSD costs the copy, not the run
            log.warning("warning: not keeping %s on the SSD: %s", self.path.name, exc.strerror)
            self.keep = None


@dataclass(frozen=True)
class StepLogs:
    """Makes each step's follower: where its lines are echoed, how, and where they are kept."""

    layout: RunLayout
    stream: TextIO                # stderr, stdout (JSON) or devnull (quiet)
    as_json: bool = False
    keep_dir: Path | None = None  # <ssd>/<pipeline>/shard-<i>/logs, None without an SSD tier

    def follow(self, step: str) -> LogFollower:
        keep = self.keep_dir / f"{step}.log" if self.keep_dir is not None else None
        follower = LogFollower(self.layout.step_log(step), step_line_renderer(step, self.as_json), self.stream, keep)
        follower.start_at_end()
        return follower


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
