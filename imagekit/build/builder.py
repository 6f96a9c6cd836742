"""The build path, start to end: pipeline spec in, tagged image (and its layer report) out.

    spec → probe the base's Python → resolve each step's wheels on the host
         → runtime base (Containerfile.base, built by the engine once per base and runtime)
         → layer plan → deterministic tarballs → image config (labels name each step's
           layer digests: its tarballs') → the engine loads base + tarballs → (push)

Engines differ only behind `Backend`; this module is the same for all of them.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from imagekit_runtime.cachedir import cache_root
from imagekit_runtime.errors import CommandFailed
from imagekit_runtime.spec import PipelineSpec

from .assembly import NewLayer, assemble
from .backend import Backend, BuildRequest, ImageInfo
from .context import pipeline_files, stage_runtime_base, write_layer_tars
from .events import Stage
from .labels import created_time, layer_labels, oci_labels, source_info
from .layercache import ChainIndex, held_layers
from .plan import DEFAULT_LAYER_BUDGET, LayerPlan, PlannedLayer, plan_layers
from .wheels import PROBE_SCRIPT, PythonTarget, install_step_requirements

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class BuildOptions:
    tag: str
    base: str | None = None  # overrides the pipeline's `base`
    layer_budget: int = DEFAULT_LAYER_BUDGET
    timestamp: int | None = None  # SOURCE_DATE_EPOCH
    version: str | None = None
    no_cache: bool = False  # engine cache and host-side caches (wheels, trees) alike
    python_version: str | None = None  # skip probing the base image
    labels: tuple[tuple[str, str], ...] = ()  # --label KEY=VALUE: over the OCI labels, under imagekit's own


@dataclass
class LayerReport:
    index: int  # position in the image, 0 = bottom
    name: str
    kind: str  # base | deps | code | pipeline
    steps: list[str]
    digest: str  # diff ID: sha256 of the uncompressed layer
    size: int | None
    cached: bool  # the engine held it already (same layer on the same layers below)
    unchanged: bool | None  # same digest as in the image the tag named before (None: no such image)


@dataclass
class BuildResult:
    tag: str
    image_id: str
    backend: str
    base: str
    runtime_base: str
    runtime_base_reused: bool
    python: str
    layers: list[LayerReport]
    shared_steps: list[str]
    layer_budget: int
    labels: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    manifest_digest: str | None = None
    pushed: dict[str, object] | None = None

    @property
    def reused(self) -> list[LayerReport]:
        return [layer for layer in self.layers if layer.kind != "base" and (layer.cached or layer.unchanged)]

    @property
    def rebuilt(self) -> list[LayerReport]:
        return [layer for layer in self.layers if layer.kind != "base" and not layer.cached]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["reused_layers"] = [layer.name for layer in self.reused]
        data["rebuilt_layers"] = [layer.name for layer in self.rebuilt]
        data["changed_layers"] = [layer.name for layer in self.layers if layer.unchanged is False]
        return data


def probe_target(backend: Backend, base_image_id: str, python_version: str | None) -> PythonTarget:
    """What the base image runs: Python version, glibc, whether supervisor/pyyaml/prometheus_client are there.
    Cached by image ID."""
    if python_version:
        return PythonTarget(version=python_version, has_supervisor=False, has_yaml=False, has_prometheus=False)
    cache_file = cache_root() / "probes" / f"{backend.name}-{base_image_id.removeprefix('sha256:')[:32]}.json"
    if cache_file.is_file():
        return PythonTarget(**json.loads(cache_file.read_text()))
    target = PythonTarget.from_probe(backend.run_python(base_image_id, PROBE_SCRIPT))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(asdict(target)))
    return target


class Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.monotonic()
        self._last = self._start

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.timings[name] = round(now - self._last, 3)
        self._last = now

    def total(self) -> None:
        self.timings["total"] = round(time.monotonic() - self._start, 3)


def build_image(spec: PipelineSpec, backend: Backend, options: BuildOptions) -> BuildResult:
    timer = Timer()
    backend.check()
    base = options.base or spec.base
    base_id = backend.ensure_image(base)
    target = probe_target(backend, base_id, options.python_version)
    log.info("base %s: CPython %s, %s glibc %s", base, target.version, target.machine, target.glibc)
    timer.lap("probe")

    # Each step resolves on its own (its environment is isolated anyway): pip runs side by side.
    with_requirements = [step for step in spec.steps if step.requirements is not None]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        trees = pool.map(lambda step: _resolved(backend, step.name,
                                                install_step_requirements(step, target, refresh=options.no_cache)),
                         with_requirements)
        deps_trees = {step.name: tree for step, tree in zip(with_requirements, trees, strict=True)}
    timer.lap("resolve")

    runtime_context = stage_runtime_base(base_id, target, options.timestamp)
    runtime_info = None if options.no_cache else backend.find(runtime_context.tag)
    runtime_reused = runtime_info is not None
    if runtime_info is not None:
        log.info("runtime base %s: reused", runtime_context.tag)
    else:
        log.info("runtime base %s: building on %s", runtime_context.tag, base)
        backend.build(BuildRequest(context=runtime_context.directory, containerfile=runtime_context.containerfile,
                                   tag=runtime_context.tag, build_args={"BASE": base_id},
                                   timestamp=options.timestamp, no_cache=options.no_cache))
        runtime_info = backend.inspect(runtime_context.tag)
        backend.events.stage("runtime base", Stage.BUILT)
    timer.lap("runtime_base")

    work = cache_root() / "contexts" / _context_name(spec)
    with _exclusive(work):
        return _build_layers(spec, backend, options, timer, work, deps_trees, base, target,
                             runtime_context.tag, runtime_info, runtime_reused)


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Two builds of the same pipeline at once would share these directories: they take turns."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_layers(spec: PipelineSpec, backend: Backend, options: BuildOptions, timer: Timer, work: Path,
                  deps_trees: dict[str, Path], base: str, target: PythonTarget,
                  runtime_tag: str, runtime_info: ImageInfo, runtime_reused: bool) -> BuildResult:
    files = pipeline_files(spec, work / "pipeline-files")
    plan = plan_layers(spec, deps_trees, files, base_layers=len(runtime_info.diff_ids), budget=options.layer_budget)
    if plan.shared_steps:
        log.warning("layer budget %d: steps %s share one deps and one code layer", plan.budget,
                    ", ".join(plan.shared_steps))
    previous = backend.find(options.tag)
    tars = write_layer_tars(plan.layers, work / "tars", backend.events)
    runtime_base = backend.base_image(runtime_info)
    timer.lap("stage")

    # Every layer's digest is its tarball's: the labels naming them are written before any engine runs.
    digests = {layer.name: tars[layer.name].sha256 for layer in plan.layers}
    labels = oci_labels(spec, source_info(spec, options.version), base, options.timestamp) | dict(options.labels)
    labels |= layer_labels(
        [{"digest": digests[layer.name], "kind": layer.kind, "name": layer.name, "steps": list(layer.steps)}
         for layer in plan.layers],
        plan.base_layers, plan.shared_steps, [step.name for step in spec.steps],
    )
    image = assemble(runtime_base, tuple(NewLayer(layer.name, _history(layer), tars[layer.name])
                                         for layer in plan.layers), labels, created_time(options.timestamp))
    chains = ChainIndex(backend.name)
    held = 0 if options.no_cache else held_layers(backend, chains, image.diff_ids, plan.base_layers, previous)
    if held:
        log.info("layers %s: held by the engine already", ", ".join(layer.name for layer in plan.layers[:held]))
    final = backend.load(image, options.tag, work, held)
    chains.record(image.diff_ids, final.id)
    if final.diff_ids != image.diff_ids:
        raise CommandFailed([backend.name, "load", options.tag], 1, "the loaded image's layers are not the ones "
                            "imagekit assembled: another build replaced the tag meanwhile?")
    cached = tuple(position < held for position in range(len(plan.layers)))
    for layer, was_held in zip(plan.layers, cached, strict=True):
        backend.events.stage(layer.name, Stage.HELD if was_held else Stage.LOADED, tars[layer.name].size)
    layers = _layer_reports(plan, final, cached, None if previous is None else set(previous.diff_ids))
    timer.lap("load")
    timer.total()
    return BuildResult(
        tag=options.tag, image_id=final.id, backend=backend.name, base=base,
        runtime_base=runtime_tag, runtime_base_reused=runtime_reused,
        python=f"CPython {target.version} {target.machine} glibc {target.glibc}", layers=layers,
        shared_steps=list(plan.shared_steps), layer_budget=plan.budget, labels=labels, timings=timer.timings,
        manifest_digest=final.manifest_digest,
    )


def _resolved(backend: Backend, step: str, tree: Path) -> Path:
    backend.events.stage(f"deps of {step}", Stage.RESOLVED)
    return tree


def _history(layer: PlannedLayer) -> str:
    steps = f" of step{'s' if len(layer.steps) > 1 else ''} {', '.join(layer.steps)}" if layer.steps else ""
    return f"imagekit: {layer.kind} layer{steps} ({layer.name}.tar)"


def _context_name(spec: PipelineSpec) -> str:
    where = hashlib.sha256(str(spec.file).encode()).hexdigest()[:10]
    return f"{spec.name}-{where}"


def _layer_reports(plan: LayerPlan, image: ImageInfo, cached: tuple[bool, ...],
                   previous: set[str] | None) -> list[LayerReport]:
    reports = []
    for index, digest in enumerate(image.diff_ids):
        size = image.layer_sizes[index] if index < len(image.layer_sizes) else None
        unchanged = None if previous is None else digest in previous
        if index < plan.base_layers:
            reports.append(LayerReport(index, f"base-{index}", "base", [], digest, size, True, unchanged))
            continue
        planned = plan.layers[index - plan.base_layers]
        position = index - plan.base_layers
        reports.append(LayerReport(index, planned.name, planned.kind, list(planned.steps), digest,
                                   size if size is not None else planned.size,
                                   cached[position] if position < len(cached) else False, unchanged))
    return reports
