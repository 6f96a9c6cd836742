"""`status`: per data item, where it is available (shm / ssd / pv / results), and which steps would run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from imagekit_core.spec import load_pipeline
from imagekit_core.spec.sources import placeholder_values

from ..checkpoint.store import CheckpointStore
from ..data import results as results_io
from ..data.datastore import DataStore
from ..keys import pipeline_key, step_keys
from .availability import Availability
from .flags import RunFlags
from .settings import resolve_options
from .transfers import prepare_transfers


def collect_status(pipeline: Path, flags: RunFlags) -> dict[str, Any]:
    spec = load_pipeline(pipeline)
    options = resolve_options(spec, flags)
    shard_index, shard_count, layout, params = options.shard_index, options.shard_count, options.layout, options.params
    values = placeholder_values(shard=shard_index, shard_count=shard_count, pipeline=spec.name, run="status",
                                params=params)
    keys = step_keys(spec, shard_index, shard_count, params, prepare_transfers(spec, values, None))
    warnings: list[str] = []
    checkpoints = CheckpointStore.for_spec(spec, layout, shard_index, warnings)
    availability = Availability(spec, layout, keys, DataStore(layout), checkpoints)
    marker = results_io.read_completion(layout.completion_marker)
    complete = bool(marker and marker.get("key") == pipeline_key(keys))
    items = []
    for step in spec.steps:
        for data in step.outputs:
            key = keys[step.name]
            items.append({
                "data": data, "step": step.name,
                "shm": availability.store.available(step.name, data, key),
                **checkpoints.describe(step.name, data, key),
                "results": availability.delivered(data) if data in spec.results else None,
            })
    plan = availability.plan()
    return {
        "pipeline": spec.name, "shard": shard_index, "shard_count": shard_count, "complete": complete,
        "shm_dir": str(layout.shm_dir), "ssd_dir": str(layout.ssd_dir) if layout.ssd_dir else None,
        "pv_dir": str(layout.pv_dir) if layout.pv_dir else None, "results_dir": str(layout.results_dir),
        "items": items, "would_run": [] if complete else plan.to_run, "would_reuse": plan.reused,
        "restore": {f"{s}/{d}": source for (s, d), source in plan.restore.items()}, "warnings": warnings,
    }


def format_status(report: dict[str, Any]) -> str:
    def mark(value: Any) -> str:
        return "-" if value is None else ("yes" if value else "no")

    lines = [f"{report['pipeline']} shard {report['shard']}/{report['shard_count']}"
             f"{' (complete)' if report['complete'] else ''}",
             f"  {'data':<16} {'step':<16} {'shm':>4} {'ssd':>4} {'pv':>4} {'results':>7}"]
    for item in report["items"]:
        lines.append(f"  {item['data']:<16} {item['step']:<16} {mark(item['shm']):>4} {mark(item.get('ssd')):>4} "
                     f"{mark(item.get('pv')):>4} {mark(item['results']):>7}")
    lines.append(f"  would run: {', '.join(report['would_run']) or 'nothing'}")
    if report["restore"]:
        lines.append("  would restore: " + ", ".join(f"{k} from {v}" for k, v in report["restore"].items()))
    lines.extend(f"  warning: {w}" for w in report["warnings"])
    return "\n".join(lines)
