"""Follow each step's log file and echo complete lines to stderr, prefixed with the step name; read a log's tail."""
from __future__ import annotations

import os
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


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
    prefix: str
    stream: TextIO = field(default_factory=lambda: sys.stderr)
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
        data = self.partial + chunk
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            line = raw.decode(errors="replace")
            self.recent.append(line)
            self.stream.write(f"{self.prefix} {line}\n")
        if lines:
            self.stream.flush()

    def last_lines(self, count: int = 20) -> list[str]:
        return list(self.recent)[-count:]
