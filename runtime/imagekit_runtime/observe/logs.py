"""Follow each step's log file: echo its complete lines (prefixed with the step name, or as JSON objects),
keep a copy beside the SSD checkpoints so a post-mortem survives the pod; read a log's tail."""
from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..layout import RunLayout
from .logformat import step_line_renderer

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
