"""What a shard keeps from one run to the next: recovery when a run starts, the completion marker when it ends.

At the start, what survived (shm first, then the SSD, then the PV) decides which steps run; the items
they need that only a checkpoint still holds are verified and brought back into shm. At the end of a
successful run the completion marker is written and old checkpoints are pruned.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from imagekit_core.spec import PipelineSpec

from ..checkpoint.store import CheckpointStore
from ..data import results as results_io
from ..data.datastore import CommitRecord, DataStore, remove_tree
from ..data.seal import Tampered, check, what
from ..data.vetting import Job, vet
from ..keys import data_key, pipeline_key
from ..layout import RunLayout
from ..observe.journal import read_journal, run_ids
from .availability import Availability
from .planner import Plan
from .summary import StepRun

log = logging.getLogger("imagekit.runtime")


def already_complete(layout: RunLayout, keys: dict[str, str]) -> bool:
    """The shard's completion marker is there and names this pipeline key (same steps, params, shard)."""
    marker = results_io.read_completion(layout.completion_marker)
    return marker is not None and marker.get("key") == pipeline_key(keys)


def forget_everything(spec: PipelineSpec, layout: RunLayout, store: DataStore) -> None:
    """--force: nothing committed in shm is reused and the shard is no longer complete."""
    for step in spec.steps:
        store.drop_step(step.name)
    remove_tree(layout.completion_marker)


def plan_recovery(spec: PipelineSpec, layout: RunLayout, keys: dict[str, str], store: DataStore,
                  checkpoints: CheckpointStore, *, force: bool) -> Plan:
    """Discard what a crashed run left half-written, drop stale commits, and plan from what survived."""
    remove_tree(layout.staging_root)  # half-written outputs of a crashed run are never committed
    checkpoints.clean_temporaries()
    layout.staging_root.mkdir(parents=True, exist_ok=True)
    for step in spec.steps:
        record = store.read_record(step.name)
        if record is not None and record.key != keys[step.name]:
            log.info("step %s changed since its outputs were committed: they will be made again", step.name)
            store.drop_step(step.name)
        elif record is not None and not record.vetted:
            producers = spec.producer_of()
            _vet_left_unvetted(step.name, record.outputs, {data: producers[data] for data in step.inputs}, layout,
                               store)
        elif (record is None and layout.committed_dir(step.name).exists()) or \
                (record is not None and not _as_sealed(step.name, record, layout)):
            store.drop_step(step.name)
    return Availability(spec, layout, keys, store, checkpoints, ignore_existing=force).plan()


def _as_sealed(step: str, record: CommitRecord, layout: RunLayout) -> bool:
    """Whether every output of a commit still in shm is as it was sealed (data/seal.py); if not, it is not reused."""
    for data, expected in record.seals.items():
        item = layout.input_path(step, data)
        if not os.path.lexists(item):
            continue  # freed: its checkpoints, if any, are verified on their own
        try:
            check(item, expected, f"{what(step, data)} in shm")
        except Tampered as exc:
            log.warning("warning: %s: it is not reused", exc)
            return False
    return True


def _vet_left_unvetted(step: str, outputs: dict[str, int], inputs: dict[str, str], layout: RunLayout,
                       store: DataStore) -> None:
    """A commit the run stopped before vetting (data/vetting.py): its per-file check (and the check of its inputs'
    seals) is done now, so finished work is reused, not made again; a refusal drops it (the step runs again)."""
    verdict = vet(Job(step, {data: layout.input_path(step, data) for data in outputs}, store.sealed_inputs(inputs)))
    if verdict.refusal is None:
        store.mark_vetted(step, verdict.sizes, verdict.seals)
        log.info("the outputs of step %s were committed but not yet checked when the run stopped: checked now",
                 step)
        return
    log.info("the outputs of step %s, committed when the run stopped, are refused (%s): the step runs again",
             step, verdict.refusal)
    store.drop_step(step)


def plan_fields(plan: Plan) -> dict[str, Any]:
    """The plan as the journal's plan event carries it."""
    return {"to_run": plan.to_run, "reused": plan.reused,
            "restore": {f"{s}/{d}": source for (s, d), source in plan.restore.items()},
            "available": {f"{s}/{d}": source for (s, d), source in plan.available.items()},
            "inputs": plan.inputs}


def note_inputs(plan: Plan, steps: dict[str, StepRun]) -> None:
    """Each step that runs learns where its inputs come from (contract.Source), for the summary."""
    for name, sources in plan.inputs.items():
        steps[name].inputs = {data: str(source) for data, source in sources.items()}


def bring_back(plan: Plan, keys: dict[str, str], store: DataStore, checkpoints: CheckpointStore, run_id: str) -> None:
    """Restore into shm what only a checkpoint holds; clear the old outputs of the steps that run again."""
    for (step, data), source in sorted(plan.restore.items()):
        log.info("restoring %s (made by %s) from the %s checkpoint", data, step, source)
        checkpoints.restore(step, data, keys[step], source, run_id)
    for name in plan.to_run:
        store.drop_step(name)  # its old outputs (other key, or partly missing) must not be read


def committed_bytes(layout: RunLayout, store: DataStore, steps: list[str]) -> int:
    """Bytes of these steps' outputs that are in shm now."""
    total = 0
    for name in steps:
        record = store.read_record(name)
        if record is not None:
            total += sum(size for data, size in record.outputs.items()
                         if os.path.lexists(layout.input_path(name, data)))
    return total


def mark_complete(spec: PipelineSpec, layout: RunLayout, keys: dict[str, str], checkpoints: CheckpointStore,
                  *, run_id: str, shard_index: int, shard_count: int) -> list[str]:
    """Write the completion marker once every result is delivered, then prune old checkpoints.
    Returns the results not delivered (then nothing is marked)."""
    producers = spec.producer_of()
    missing = [d for d in spec.results if not results_io.delivered(layout.results_dir, d, keys[producers[d]])]
    if missing:
        return missing
    results_io.write_completion(layout.completion_marker, {
        "pipeline": spec.name, "key": pipeline_key(keys), "run": run_id, "shard": shard_index,
        "shard_count": shard_count, "completed_at": time.time(), "results": list(spec.results),
    })
    keep = {data_key(keys[step.name], data) for step in spec.steps for data in step.outputs}
    for removed in checkpoints.prune(keep, spec.checkpoint.retention, run_ids(read_journal(layout.journal))):
        log.info("pruned old checkpoint %s", removed)
    return []
