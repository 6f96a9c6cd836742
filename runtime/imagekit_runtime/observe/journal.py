"""The run journal: an append-only JSON-lines file of step transitions and run events, and its one reader.

Each line is one event (names in contract.Event), flushed as it is written, so a crash loses at most
the line being written; every reader here skips such a torn line. The runtime writes it; `imagekit
status`, the pod emulator (from a copy read out of a container), the tests and the benchmarks read it
through the functions below.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from imagekit_core.contract import Event

from ..states import StepState

log = logging.getLogger("imagekit.runtime")

Entry = dict[str, Any]


class Journal:
    """The writer: one per run, shared by the conductor and the copier thread. The file is opened at the
    first event, so a journal that exists always starts its run with run-start. Each entry is also
    handed to `listener` (the metrics' LiveRun, live_run.py), on the thread that records it.

    Only the runtime writes it: the file is read-only while the run has it open (steps run as the same user,
    so this stops a mistake, not a step that chmods it back), and before each entry the writer checks that
    the file is the one it opened and unchanged since its last entry (size and ctime: any write, chmod or
    rename by another process moves the ctime). A change is kept in `foreign`, and the run fails with it."""

    def __init__(self, path: Path, run_id: str, listener: Callable[[Entry], None] | None = None) -> None:
        self.path = path
        self.run_id = run_id
        self.listener = listener
        self._file: TextIO | None = None
        self._lock = threading.Lock()  # the copier thread records checkpoints too
        self._seen: tuple[int, int, int] | None = None  # (inode, size, ctime) after the runtime's last entry
        self.foreign: str | None = None  # how the journal was changed by another process, once it was

    def record(self, event: Event, **fields: Any) -> None:
        entry = {"ts": round(time.time(), 6), "run": self.run_id, "event": event.value, **fields}
        line = json.dumps(entry, sort_keys=True, default=str) + "\n"
        if self.listener is not None:
            self.listener(entry)
        with self._lock:
            try:
                if self._file is None:
                    self._file = self._open()
                else:
                    self._compare()
                self._file.write(line)
                self._file.flush()
                self._seen = self._identity(os.fstat(self._file.fileno()))
            except OSError as exc:  # a full shm must not turn a step failure into a crash
                log.warning("warning: journal %s: %s", self.path, exc.strerror)

    def _open(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            os.chmod(self.path, 0o644)  # an earlier run left it read-only
        handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        os.fchmod(handle.fileno(), 0o444)
        return handle

    @staticmethod
    def _identity(info: os.stat_result) -> tuple[int, int, int]:
        return info.st_ino, info.st_size, info.st_ctime_ns

    def check(self) -> str | None:
        """How another process changed the journal (None: it did not), as of now."""
        with self._lock:
            self._compare()
            return self.foreign

    def _compare(self) -> None:
        """Note in `foreign` when the journal is not as the runtime's last entry left it."""
        if self.foreign is not None or self._seen is None or self._file is None:
            return
        try:
            on_disk = os.stat(self.path).st_ino
        except FileNotFoundError:
            on_disk = -1
        now = self._identity(os.fstat(self._file.fileno()))
        if on_disk != self._seen[0]:
            self.foreign = f"the journal {self.path} was removed or replaced by another process during the run"
        elif now != self._seen:
            self.foreign = (f"the journal {self.path} was written by another process during the run "
                            f"({now[1] - self._seen[1]:+d} bytes; only the runtime writes it)")
        if self.foreign is not None:
            log.error("error: %s", self.foreign)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def parse_lines(lines: Iterable[str], run_id: str | None = None) -> Iterator[Entry]:
    """Entries of journal lines, of one run only if run_id is given; torn or foreign lines are skipped."""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # the line a crash tore
        if isinstance(entry, dict) and "event" in entry and (run_id is None or entry.get("run") == run_id):
            yield entry


def parse_text(text: str, run_id: str | None = None) -> list[Entry]:
    """Entries of a journal's whole text (e.g. a copy read out of a container)."""
    return list(parse_lines(text.splitlines(), run_id))


def read_journal(path: Path, run_id: str | None = None) -> Iterator[Entry]:
    """Entries of the journal file, of one run only if run_id is given; nothing if there is no file."""
    if not path.exists():
        return
    with open(path, encoding="utf-8", errors="replace") as journal_file:
        yield from parse_lines(journal_file, run_id)


def run_ids(entries: Iterable[Entry]) -> list[str]:
    """Run ids in journal order."""
    seen: list[str] = []
    for entry in entries:
        if entry.get("event") == Event.RUN_START and entry.get("run") not in seen:
            seen.append(entry["run"])
    return seen


def runs_in(path: Path) -> list[str]:
    return run_ids(read_journal(path))


def started(entries: Iterable[Entry]) -> list[str]:
    """Steps whose process was started (at least once) among these entries, in start order."""
    names: list[str] = []
    for entry in entries:
        running = entry.get("event") == Event.TRANSITION and entry.get("to") == StepState.RUNNING
        if running and entry["step"] not in names:
            names.append(entry["step"])
    return names


def steps_started(path: Path, run_id: str) -> list[str]:
    """Steps whose process was started (at least once) in the given run, in start order."""
    return started(read_journal(path, run_id))


def transition_time(entries: Iterable[Entry], step: str, to: str) -> float | None:
    """When `step` first entered state `to` (the entry's wall-clock ts), or None."""
    for entry in entries:
        if entry.get("event") == Event.TRANSITION and entry.get("step") == step and entry.get("to") == to:
            return float(entry["ts"])
    return None


@dataclass
class RunView:
    """The newest run in a journal, and what every run of it checkpointed."""

    runs: int = 0
    key: str | None = None                                  # the pipeline key of the newest run
    started_at: float | None = None                         # its run-start's ts
    status: str | None = None                               # its run-end status, if it ended
    steps: dict[str, str] = field(default_factory=dict)     # step -> newest state
    started: list[str] = field(default_factory=list)        # steps whose process started
    reused: list[str] = field(default_factory=list)
    restored: dict[str, str] = field(default_factory=dict)  # step/data -> ssd | pv
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # step that runs -> input -> contract.Source
    checkpointed: list[str] = field(default_factory=list)   # step/data@tier, over all runs
    outputs: dict[str, int] = field(default_factory=dict)   # step/data -> bytes in shm pages, as committed
    peak_shm_bytes: int | None = None                       # from its run-end


def newest_run(entries: list[Entry]) -> RunView:
    view = RunView()
    ids = run_ids(entries)
    view.runs = len(ids)
    for entry in entries:
        if entry.get("event") == Event.CHECKPOINTED:
            item = f"{entry.get('step')}/{entry.get('data')}@{entry.get('tier')}"
            if item not in view.checkpointed:
                view.checkpointed.append(item)
    if not ids:
        return view
    for entry in (e for e in entries if e.get("run") == ids[-1]):
        _apply(view, entry)
    return view


def _apply(view: RunView, entry: Entry) -> None:
    event = entry.get("event")
    if event == Event.RUN_START:
        view.key = entry.get("key")
        view.started_at = entry.get("ts")
    elif event in (Event.TRANSITION, Event.VETTED):
        if event == Event.TRANSITION:
            view.steps[entry["step"]] = entry["to"]
        for data, size in (entry.get("outputs") or {}).items():
            view.outputs[f"{entry['step']}/{data}"] = int(size)
        if entry.get("to") == StepState.RUNNING and entry["step"] not in view.started:
            view.started.append(entry["step"])
    elif event == Event.PLAN:
        for step in entry.get("to_run") or []:
            view.steps.setdefault(step, StepState.WAITING.value)
        view.reused = list(entry.get("reused") or [])
        view.restored = dict(entry.get("restore") or {})
        view.inputs = dict(entry.get("inputs") or {})
    elif event == Event.RUN_END:
        view.status = entry.get("status")
        view.peak_shm_bytes = entry.get("peak_shm_bytes")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
