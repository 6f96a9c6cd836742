"""Content keys, as a build system keys its actions.

A step's key hashes the step package (code and settings), the pipeline's
params, the shard, and the keys of the steps that produced its inputs. Keys
depend only on specs, never on data, so they are known before anything runs;
a stored output is trusted only when its recorded key equals the current one.
The one exception is a source's built-in step: its key also holds the source's
identity (its URL and the object's ETag, or the listing of a prefix), which
transfer/plan.py learns before planning.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from imagekit_core.spec import PipelineSpec


def step_keys(spec: PipelineSpec, shard_index: int, shard_count: int, params: Mapping[str, str],
              identities: Mapping[str, str] | None = None) -> dict[str, str]:
    """identities: source step -> what it fetches (transfer.plan.prepare_transfers); without them (a spec's
    keys only, e.g. for tests) a source is keyed by its template alone."""
    producers = spec.producer_of()
    keys: dict[str, str] = {}
    for name in spec.topological_order():
        step = spec.step(name)
        upstream = sorted({f"{data}={keys[producers[data]]}" for data in step.inputs})
        material = {
            "step": step.content_hash(),
            "inputs": upstream,
            "params": sorted(params.items()),
            "shard": [shard_index, shard_count],
        }
        if identities and name in identities:
            material["source"] = identities[name]
        keys[name] = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return keys


def data_key(step_key: str, data: str) -> str:
    return hashlib.sha256(f"{step_key}/{data}".encode()).hexdigest()


def pipeline_key(keys: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(keys.items())).encode()).hexdigest()
