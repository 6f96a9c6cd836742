"""Committed outputs after their commit: delivered when they are results, checkpointed, freed when unneeded.

Copies run on the copier's thread; an item is freed from shm only once every step that reads it is done
and no copy of it is pending. Results, and final outputs nobody reads, are never freed.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from imagekit_core.contract import Event
from imagekit_core.spec import PipelineSpec

from ..checkpoint.store import CheckpointStore
from ..data import results as results_io
from ..data import seal
from ..data.copier import Copier, CopyJob
from ..data.datastore import CommitRecord, DataStore
from ..layout import RunLayout
from ..observe.journal import Journal


@dataclass
class OutputKeeper:
    spec: PipelineSpec
    layout: RunLayout
    keys: dict[str, str]
    store: DataStore
    copier: Copier
    checkpoints: CheckpointStore
    journal: Journal
    freed: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.consumers = self.spec.consumers_of()

    def deliver_and_checkpoint(self, step: str, record: CommitRecord | None = None) -> None:
        """Queue the copies a committed (or reused) step's outputs still need; each is checked against the
        item's seal (from `record`, the commit's, else read) before it is renamed into place."""
        key = self.keys[step]
        record = record or self.store.read_record(step)
        seals = record.seals if record is not None else {}
        for data in self.spec.step(step).outputs:
            source = self.layout.input_path(step, data)
            if not os.path.lexists(source):
                continue
            check = partial(seal.check, source, seals[data], seal.what(step, data)) if data in seals else None
            if data in self.spec.results and not results_io.delivered(self.layout.results_dir, data, key):
                self.copier.submit(CopyJob(
                    description=f"delivering result {data}", owner=(step, data),
                    action=partial(results_io.deliver, source, self.layout.results_dir, data, key, check)))
            for job in self.checkpoints.jobs_for(
                    step, data, key, source, self.journal.run_id,
                    on_written=partial(self._journal_checkpoint, step, data), check=check):
                self.copier.submit(job)

    def changed_since_commit(self) -> list[str]:
        """Every committed item still in shm checked against its seal: one line for each that changed."""
        found: list[str] = []
        for step in self.spec.steps:
            record = self.store.read_record(step.name)
            for data, expected in (record.seals if record is not None else {}).items():
                source = self.layout.input_path(step.name, data)
                if (step.name, data) in self.freed or not os.path.lexists(source):
                    continue
                try:
                    seal.check(source, expected, seal.what(step.name, data))
                except seal.Tampered as exc:
                    found.append(str(exc))
        return found

    def _journal_checkpoint(self, step: str, data: str, tier: str, path: Path) -> None:
        self.journal.record(Event.CHECKPOINTED, step=step, data=data, tier=tier, path=str(path))

    def readers_over(self, step: str, over: Callable[[str], bool]) -> bool:
        """Every step reading one of this step's outputs is `over` (done, or will not run)."""
        return all(over(consumer) for data in self.spec.step(step).outputs for consumer in self.consumers.get(data, []))

    def free_unneeded(self, done: Iterable[str], settled: Callable[[str], bool]) -> int:
        """Free the outputs of the `done` steps whose consumers are all `settled`; returns the bytes released."""
        released = 0
        for step in done:
            for data in self.spec.step(step).outputs:
                released += self._free_if_unneeded(step, data, settled)
        return released

    def release_checkpointed(self) -> int:
        """Free from shm every committed item that a checkpoint holds: a complete shard held up in a pod keeps no
        memory it no longer needs (shm is the pod's memory). What an update reruns then comes back from the SSD."""
        released = 0
        for step in self.spec.steps:
            for data in step.outputs:
                if (step.name, data) in self.freed or not os.path.lexists(self.layout.input_path(step.name, data)):
                    continue
                if not any(self.checkpoints.describe(step.name, data, self.keys[step.name]).values()):
                    continue  # no other copy: kept
                self.freed.add((step.name, data))
                size = self.store.free(step.name, data)
                self.journal.record(Event.FREED, step=step.name, data=data, bytes=size)
                released += size
        return released

    def _free_if_unneeded(self, step: str, data: str, settled: Callable[[str], bool]) -> int:
        if (step, data) in self.freed or data in self.spec.results:
            return 0
        consumers = self.consumers.get(data, [])
        if not consumers:
            return 0  # a final output nobody reads is kept like a result
        if not all(settled(consumer) for consumer in consumers) or self.copier.pending(step, data):
            return 0  # still to be read, or still being copied to a checkpoint
        self.freed.add((step, data))
        if not os.path.lexists(self.layout.input_path(step, data)):
            return 0
        released = self.store.free(step, data)
        self.journal.record(Event.FREED, step=step, data=data, bytes=released)
        return released
