"""What a running shard looks like from outside: the LiveRun the metrics read, and the Health the probes ask.

The journal writer hands every entry to `LiveRun.observe` (the conductor's thread and the copier's); the
metrics server reads a `Snapshot` of it at each scrape. Nothing here imports prometheus_client, so the view
is tested, and the runtime runs, without it.

The conductor's loop calls `Health.beat()` on every turn; /healthz fails once it has not beaten for
`stale_after` seconds (a hung or stopped loop), so the liveness probe restarts the container. Before the
loop starts (recovery, restores) the startup probe gives it time; after the run (holding a complete shard)
the runtime stays healthy.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from imagekit_core import contract
from imagekit_core.contract import Event

from ..states import StepState


class Phase(StrEnum):
    STARTING = "starting"   # loading, recovering, restoring: no beat yet
    RUNNING = "running"     # the conductor's loop beats
    STOPPING = "stopping"   # the run is ending (SIGTERM, a failure)
    DONE = "done"           # the run is over; the process holds or exits


@dataclass
class Health:
    stale_after: float = contract.HEARTBEAT_STALE_SECONDS
    phase: Phase = Phase.STARTING
    last_beat: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self) -> None:
        with self._lock:
            self.last_beat = time.monotonic()
            if self.phase is Phase.STARTING:
                self.phase = Phase.RUNNING

    def set_phase(self, phase: Phase) -> None:
        with self._lock:
            self.phase = phase

    def liveness(self) -> tuple[bool, str]:
        with self._lock:
            if self.phase is Phase.STARTING:
                return False, "starting: the conductor's loop has not begun"
            if self.phase is not Phase.RUNNING:
                return True, f"ok ({self.phase.value})"
            age = time.monotonic() - self.last_beat
            if age > self.stale_after:
                return False, f"the conductor's loop has not beaten for {age:.1f}s (limit {self.stale_after:g}s)"
            return True, f"ok (last beat {age:.2f}s ago)"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            ready = self.phase in (Phase.RUNNING, Phase.DONE)
            return ready, self.phase.value


# Upper bounds (seconds) of the handoff histogram: from the last input committed to the consumer running.
HANDOFF_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SHM = "shm"


@dataclass(frozen=True)
class RunShape:
    """What the journal does not say: the steps, who produces what, where checkpoints go."""

    pipeline: str
    steps: tuple[str, ...]
    inputs: dict[str, tuple[str, ...]]   # step -> the data it reads
    producers: dict[str, str]            # data -> the step that writes it
    checkpoint_tiers: dict[str, tuple[str, ...]]  # data -> the tiers its checkpoints are written to
    shm_dir: Path
    shm_limit_bytes: int


@dataclass
class Snapshot:
    run_info: dict[str, str]
    step_state: dict[str, str]
    step_duration: dict[str, float]
    step_attempts: dict[str, int]
    data_bytes: dict[tuple[str, str], int]
    checkpoint_pending: dict[str, int]
    handoff_buckets: list[int]   # cumulative counts, one per HANDOFF_BUCKETS bound, then +Inf
    handoff_sum: float
    shm_used_bytes: int
    shm_limit_bytes: int


@dataclass
class LiveRun:
    """A running shard as its journal tells it, step by step; journal.RunView is the same read afterwards."""

    shape: RunShape | None = None
    run_info: dict[str, str] = field(default_factory=dict)
    states: dict[str, StepState] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    running_since: dict[str, float] = field(default_factory=dict)
    committed_at: dict[str, float] = field(default_factory=dict)   # step -> when its outputs were committed
    data_bytes: dict[tuple[str, str], int] = field(default_factory=dict)  # (data, tier) -> bytes
    sizes: dict[str, int] = field(default_factory=dict)            # data -> committed bytes
    pending: dict[tuple[str, str], int] = field(default_factory=dict)  # (data, tier) -> bytes not yet written
    handoffs: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, shape: RunShape) -> None:
        with self._lock:
            self.shape = shape
            self.states = {name: StepState.WAITING for name in shape.steps}

    def observe(self, entry: dict[str, Any]) -> None:
        """One journal entry (as Journal.record writes it)."""
        with self._lock:
            event = entry.get("event")
            if event == Event.RUN_START:
                self.run_info = {"pipeline": str(entry.get("pipeline", "")), "run": str(entry.get("run", "")),
                                 "shard": str(entry.get("shard", ""))}
            elif event == Event.TRANSITION:
                self._transition(entry)
            elif event == Event.VETTED:
                self._sized(entry)
            elif event == Event.CHECKPOINTED:
                data, tier = str(entry.get("data")), str(entry.get("tier"))
                self.pending.pop((data, tier), None)
                self.data_bytes[(data, tier)] = self.sizes.get(data, 0)
            elif event == Event.FREED:
                self.data_bytes.pop((str(entry.get("data")), SHM), None)

    def _transition(self, entry: dict[str, Any]) -> None:
        step, new, now = str(entry.get("step")), StepState(str(entry.get("to"))), float(entry.get("ts") or time.time())
        self.states[step] = new
        if new is StepState.RUNNING:
            self.attempts[step] = self.attempts.get(step, 0) + 1
            self.running_since[step] = now
            self._observe_handoff(step, now)
        elif step in self.running_since:
            self.durations[step] = now - self.running_since.pop(step)
        if new is StepState.COMMITTED:
            self.committed_at[step] = now
            self._sized(entry)

    def _sized(self, entry: dict[str, Any]) -> None:
        """The sizes of a commit (its `committed` transition, or the `vetted` event of a directory output)."""
        for data, size in (entry.get("outputs") or {}).items():
            self.sizes[data] = int(size)
            self.data_bytes[(data, SHM)] = int(size)
            for tier in self.shape.checkpoint_tiers.get(data, ()) if self.shape else ():
                self.pending[(data, tier)] = int(size)

    def _observe_handoff(self, step: str, now: float) -> None:
        if self.shape is None or self.attempts[step] > 1:
            return
        committed = [self.committed_at.get(self.shape.producers.get(data, ""))
                     for data in self.shape.inputs.get(step, ())]
        if committed and all(when is not None for when in committed):
            self.handoffs.append(max(0.0, now - max(when for when in committed if when is not None)))

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.time()
            durations = dict(self.durations)
            for step, since in self.running_since.items():
                durations[step] = now - since
            pending: dict[str, int] = {}
            for (_data, tier), size in self.pending.items():
                pending[tier] = pending.get(tier, 0) + size
            for tier in {t for ts in (self.shape.checkpoint_tiers.values() if self.shape else ()) for t in ts}:
                pending.setdefault(tier, 0)
            cumulative = [sum(1 for h in self.handoffs if h <= bound) for bound in HANDOFF_BUCKETS]
            used, limit = shm_usage(self.shape)
            return Snapshot(
                run_info=dict(self.run_info), step_state={k: v.value for k, v in self.states.items()},
                step_duration=durations, step_attempts=dict(self.attempts), data_bytes=dict(self.data_bytes),
                checkpoint_pending=pending, handoff_buckets=[*cumulative, len(self.handoffs)],
                handoff_sum=sum(self.handoffs), shm_used_bytes=used, shm_limit_bytes=limit)


def shm_usage(shape: RunShape | None) -> tuple[int, int]:
    """Bytes in use on the shm filesystem, and the pipeline's shm budget (the filesystem's size if smaller)."""
    if shape is None:
        return 0, 0
    try:
        stat = os.statvfs(shape.shm_dir)
    except OSError:
        return 0, shape.shm_limit_bytes
    size = stat.f_blocks * stat.f_frsize
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize, min(shape.shm_limit_bytes, size) if size else \
        shape.shm_limit_bytes
