"""Where each data item of a shard can be found now: shm, a checkpoint, the results directory."""
from __future__ import annotations

from dataclasses import dataclass

from imagekit_core.contract import Source
from imagekit_core.spec import PipelineSpec

from ..checkpoint.store import CheckpointStore
from ..data import results as results_io
from ..data.datastore import DataStore
from ..layout import RunLayout
from .planner import Plan, make_plan


@dataclass
class Availability:
    spec: PipelineSpec
    layout: RunLayout
    keys: dict[str, str]
    store: DataStore
    checkpoints: CheckpointStore
    ignore_existing: bool = False  # --force: make everything again

    def locate(self, step: str, data: str) -> str | None:
        if self.ignore_existing:
            return None
        if self.store.available(step, data, self.keys[step]):
            return Source.SHM
        return self.checkpoints.locate(step, data, self.keys[step])

    def delivered(self, data: str) -> bool:
        if self.ignore_existing:
            return False
        producer = self.spec.producer_of()[data]
        return results_io.delivered(self.layout.results_dir, data, self.keys[producer])

    def step_recorded(self, step: str) -> bool:
        if self.ignore_existing:
            return False
        record = self.store.read_record(step)
        return record is not None and record.key == self.keys[step]

    def plan(self) -> Plan:
        return make_plan(self.spec, self.locate, self.delivered, self.step_recorded)
