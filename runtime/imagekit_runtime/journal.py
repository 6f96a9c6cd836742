"""An append-only JSON-lines journal of step transitions and run events.

Recovery tests and `imagekit status` read it; each line is one event and is
flushed as it is written, so a crash loses at most the line being written.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger("imagekit.runtime")


@dataclass
class Journal:
    path: Path
    run_id: str

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()  # the copier thread records checkpoints too

    def record(self, event: str, **fields: Any) -> None:
        entry = {"ts": round(time.time(), 6), "run": self.run_id, "event": event, **fields}
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except OSError as exc:  # a full shm must not turn a step failure into a crash
                log.warning("warning: journal %s: %s", self.path, exc.strerror)

    def close(self) -> None:
        self._file.close()


def read_journal(path: Path, run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Entries of the journal, of one run only if run_id is given; a torn last line is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as journal_file:
        for line in journal_file:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if run_id is None or entry.get("run") == run_id:
                yield entry


def runs_in(path: Path) -> list[str]:
    """Run ids in journal order."""
    seen: list[str] = []
    for entry in read_journal(path):
        if entry.get("event") == "run-start" and entry["run"] not in seen:
            seen.append(entry["run"])
    return seen


def steps_started(path: Path, run_id: str) -> list[str]:
    """Steps whose process was started (at least once) in the given run, in start order."""
    started: list[str] = []
    for entry in read_journal(path, run_id):
        if entry.get("event") == "transition" and entry.get("to") == "running" and entry["step"] not in started:
            started.append(entry["step"])
    return started


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
