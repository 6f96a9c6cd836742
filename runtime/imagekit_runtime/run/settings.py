"""Resolve where a run keeps things: command-line flags (flags.py), then IMAGEKIT_* variables, then the pipeline.

One pipeline runs on a laptop, in CI and in a pod; only these settings differ.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.spec import VARIABLE_NAME_RE, PipelineSpec

from ..layout import RunLayout
from ..locations import IMAGE_LOCATIONS, checkpoint_dir, default_locations
from ..supervise.environments import EnvironmentProvider, LocalVenvs, PrebuiltDeps, default_cache_dir
from .flags import RunFlags
from .options import RunOptions


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def shard_from_pod_name(name: str | None) -> int | None:
    """StatefulSet pods are named <set>-<ordinal>; the ordinal is the shard."""
    if not name:
        return None
    match = re.search(r"-(\d+)$", name)
    return int(match.group(1)) if match else None


def _env_int(name: str, fix: str) -> int | None:
    text = _env(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{name}={text!r} is not a number (fix: {fix})") from None


def resolve_options(spec: PipelineSpec, flags: RunFlags) -> RunOptions:
    """Everything the flags leave to IMAGEKIT_* and the pipeline, decided once: the shard, where things are kept,
    the params (an override the pipeline does not declare is refused), whether a complete run holds."""
    shard_index, shard_count = resolve_shard(spec, flags)
    overrides = parse_params(flags.param)
    check_params(spec, overrides)
    return RunOptions(layout=resolve_layout(spec, flags, shard_index), flags=flags, shard_index=shard_index,
                      shard_count=shard_count, params={**dict(spec.params), **overrides},
                      hold=hold_requested(flags))


def hold_requested(flags: RunFlags) -> bool:
    """--hold-when-complete, or its variable (set by the rendered manifests)."""
    return flags.hold_when_complete or contract.is_hold_requested(_env(contract.HOLD_WHEN_COMPLETE))


def resolve_shard(spec: PipelineSpec, settings: RunFlags) -> tuple[int, int]:
    index = settings.shard_index
    if index is None:
        index = _env_int(contract.SHARD_INDEX, "set it to the pod ordinal")
    if index is None:
        index = shard_from_pod_name(_env(contract.POD_NAME))
    if index is None:
        index = 0
    count = settings.shard_count
    if count is None:
        count = _env_int(contract.SHARD_COUNT, "set it to the number of replicas")
    if count is None:
        count = spec.shards
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"shard index {index} is outside 0..{count - 1} "
                         f"(fix: pass --shard-index below --shard-count, or raise `shards` in {spec.file})")
    return index, count


def resolve_layout(spec: PipelineSpec, settings: RunFlags, shard_index: int) -> RunLayout:
    defaults = default_locations()
    shm_text = settings.shm_dir or _env(contract.SHM_DIR)
    shm_base = Path(shm_text) if shm_text else defaults.shm_base
    shm_dir = shm_base / spec.name / contract.shard_dir_name(shard_index)
    if settings.no_checkpoints:
        ssd = pv = None
    else:
        ssd_text = settings.ssd or _env(contract.SSD_DIR)
        pv_text = settings.pv or _env(contract.PV_DIR)
        # preflight.py refuses a directory it cannot write
        ssd = Path(ssd_text) if ssd_text else checkpoint_dir(spec.checkpoint.ssd, IMAGE_LOCATIONS.ssd, defaults.ssd)
        pv = Path(pv_text) if pv_text else checkpoint_dir(spec.checkpoint.pv, IMAGE_LOCATIONS.pv, defaults.pv)
    results_text = settings.results or _env(contract.RESULTS_DIR)
    if results_text:
        results = Path(results_text)
    elif pv is not None:
        results = pv / contract.RESULTS_DIR_NAME / str(shard_index)
    else:
        results = Path.cwd() / "imagekit-results" / spec.name / str(shard_index)
    run_text = settings.run_dir or _env(contract.RUN_DIR)
    run_dir = Path(run_text) if run_text else shm_dir / contract.RUN_DIR_NAME
    return RunLayout(shm_dir=shm_dir.absolute(), run_dir=run_dir.absolute(), results_dir=results.absolute(),
                     ssd_dir=ssd.absolute() if ssd else None, pv_dir=pv.absolute() if pv else None)


def resolve_environments(settings: RunFlags) -> EnvironmentProvider:
    deps_root = settings.deps_root or _env(contract.DEPS_ROOT)
    if deps_root:
        return PrebuiltDeps(Path(deps_root))
    return LocalVenvs(default_cache_dir())


def check_params(spec: PipelineSpec, overrides: dict[str, str]) -> None:
    """--param only overrides a param the pipeline declares: a misspelt one would be silently ignored."""
    declared = [name for name, _ in spec.params]
    for key in overrides:
        if key not in declared:
            close = difflib.get_close_matches(key, declared, n=1)
            hint = f"did you mean {close[0]}?" if close else \
                (f"the pipeline's params are {', '.join(declared)}" if declared else "the pipeline declares no params")
            raise UsageError(f"--param {key}: {spec.file} has no param {key!r} ({hint}) "
                             f"(fix: declare it under `params:` or correct the name)")


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not VARIABLE_NAME_RE.match(key):
            raise UsageError(f"--param {pair!r} is not KEY=VALUE (fix: write --param WORDFREQ_BYTES=64Mi)")
        problem = contract.env_problem(key, value)
        if problem is not None:
            raise UsageError(f"--param {key}: {problem} (fix: a param the pipeline declares, a plain value)")
        params[key] = value
    return params
