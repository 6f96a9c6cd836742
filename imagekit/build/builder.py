"""The build path, start to end: pipeline spec in, tagged image (and its layer report) out.

    spec → probe the base image (its Python, what it holds) → resolve each step's wheels on the host
         (and the S3 client's, when the pipeline uses s3: s3client.py)
         → runtime base layers (runtimebase.py) → layer plan → deterministic tarballs
         → image config (labels name each step's layer digests: its tarballs')
         → the engine loads base + tarballs → (push)

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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from imagekit_core.cachedir import cache_root
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform
from imagekit_core.spec import PipelineSpec

from .assembly import AssembledImage, NewLayer, assemble
from .backend import Backend, ImageInfo
from .baseimage import BaseLookup, BaseMoved, look_up_base, stored_base
from .context import cached_layer_tar, pipeline_files, write_layer_tars
from .events import Stage
from .labels import SourceInfo, commit_time, created_time, layer_labels, oci_labels, source_info
from .loading import load_image
from .lock import locked_target
from .plan import DEFAULT_LAYER_BUDGET, SBOM_ROOT, LayerPlan, PlannedLayer, plan_layers
from .probe import probe_base
from .reuse import LayerCache, NoCache, RemoteLayer
from .runtimebase import BaseFacts, RuntimeBase, assemble_runtime_base, runtime_sbom
from .s3client import S3_CLIENT, ClientLayer, install_client
from .sbom import RUNTIME_SBOM, sbom_file
from .step_deps import DepsRequest, StepDeps, bytecode_compiler, get_all, get_step_deps
from .tarball import LayerTar
from .wheels import PythonTarget, download_runtime_wheels

log = logging.getLogger("imagekit.build")

RUNTIME_BASE_NAME = "imagekit/runtime-base"  # the report names the runtime base NAME:<its content key>


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
    locked: bool = False  # every step's requirements.lock must be current: none is written (--locked)
    bytecode: bool = True  # deps and code layers carry .pyc for the image's Python (--no-bytecode: none)
    cache: LayerCache = field(default_factory=NoCache)  # images whose layers are reused by key (--cache-from)
    fetch_reused: bool = True  # False (build --push): rather than download reused layers to load the image,
    # leave it out of the engine (the push sends it from where it is)
    platform: Platform | None = None  # the base must be this platform's (build --platform): else refused


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
    from_registry: bool = False  # reused from a cache image by its key (build --cache-from): not made here


@dataclass
class BuildResult:
    tag: str
    image_id: str
    backend: str
    base: str
    runtime_base: str
    runtime_base_reused: bool
    python: str
    platform: str  # linux/amd64, linux/arm64: the base's, found by the probe
    layers: list[LayerReport]
    shared_steps: list[str]
    layer_budget: int
    labels: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    manifest_digest: str | None = None
    pushed: dict[str, object] | None = None
    sboms: list[dict[str, object]] = field(default_factory=list)  # name, path in the image, layer, packages
    loaded: bool = True  # False: left out of the engine (build --push, layers reused from a registry)
    image: AssembledImage | None = field(default=None, repr=False)  # what a push of imagekit's own sends
    cache_images: list[str] = field(default_factory=list)  # the cache images found (--cache-from)

    @property
    def reused(self) -> list[LayerReport]:
        return [layer for layer in self.layers
                if layer.kind != "base" and (layer.cached or layer.unchanged or layer.from_registry)]

    @property
    def rebuilt(self) -> list[LayerReport]:
        return [layer for layer in self.layers if layer.kind != "base" and not layer.cached and not layer.from_registry]

    def to_json(self) -> dict[str, object]:
        data = asdict(replace(self, image=None))
        del data["image"]
        data["reused_layers"] = [layer.name for layer in self.reused]
        data["rebuilt_layers"] = [layer.name for layer in self.rebuilt]
        data["changed_layers"] = [layer.name for layer in self.layers if layer.unchanged is False]
        return data


def probe_target(backend: Backend, base_image_id: str, python_version: str | None) -> PythonTarget:
    """The Python and platform wheels are chosen for (--python-version overrides the version asked)."""
    target = PythonTarget.from_probe(probe_base(backend, base_image_id))
    return replace(target, version=python_version) if python_version else target


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
    try:
        return _build_image(spec, backend, options, remembered_base=not options.no_cache)
    except BaseMoved as moved:
        log.info("base image: %s; building on it", moved)
        return _build_image(spec, backend, options, remembered_base=False)


def _build_image(spec: PipelineSpec, backend: Backend, options: BuildOptions, *, remembered_base: bool) -> BuildResult:
    timer = Timer()
    backend.check()
    base = options.base or spec.base
    with_requirements = [step for step in spec.packaged_steps if step.requirements is not None]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 1) + 1)) as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagekit-engine") as engine:
        # Which image the base reference names (on a rebuild: checked on the side, see baseimage.py) and the
        # image the tag names now (what this build is compared with) are asked while the host-side work goes
        # on, one after the other: each is an engine round trip (buildah: a process, ~40 ms, which takes
        # its storage's locks: two at once take longer than one after the other).
        lookup = look_up_base(backend, base, engine, remembered=remembered_base)
        previous = engine.submit(backend.find, options.tag)
        source = pool.submit(source_info, spec, options.version)  # git, for the labels
        committed = pool.submit(commit_time, spec.directory) if options.timestamp is None else None
        # The base's stored config (Docker: from `docker save`, once per image) while the rest goes on.
        base_image = pool.submit(stored_base, backend, lookup.id)
        # When the locks all name one target, their wheels are fetched while the base is probed: the
        # probe then almost always confirms that target (else they are installed again for the real one).
        guess = None if options.python_version else locked_target(with_requirements, options.platform)
        pack = 2 * len(spec.packaged_steps) + 8 < options.layer_budget  # no step can share a deps layer: tar each now
        early_request = _deps_request(guess, options, pack) if guess else None
        early = get_all(pool, with_requirements, early_request) if early_request else None
        probe = probe_base(backend, lookup.id)
        target = probe_target(backend, lookup.id, options.python_version)
        if options.platform is not None and target.platform != options.platform:
            raise UsageError(f"base {base} is a {target.platform} image, not {options.platform} (fix: name a base "
                             f"for {options.platform}: --platform-base {options.platform}=REF, or under `platforms:` "
                             "in pipeline.yaml)")
        log.info("base %s: CPython %s, %s glibc %s", base, target.version, target.machine, target.glibc)
        timer.lap("probe")

        guessed = early_request is not None and early_request.target.key() == target.key()
        request = early_request if early_request is not None and guessed else _deps_request(target, options, pack)
        runtime_wheels = pool.submit(download_runtime_wheels, target)
        s3_client = pool.submit(_install_client, target, options.no_cache) if spec.uses_s3 else None
        if early is None or not guessed:
            for future in early or ():  # they may be writing the locks: let them finish first
                future.exception()
            early = get_all(pool, with_requirements, request)
        deps = {step.name: future.result() for step, future in zip(with_requirements, early, strict=True)}
        for name, got in deps.items():
            backend.events.stage(f"deps of {name}", Stage.REUSED if got.reused else Stage.RESOLVED)
        wheels = runtime_wheels.result()
        client = s3_client.result() if s3_client else None
        if client is not None:
            backend.events.stage(S3_CLIENT, Stage.RESOLVED)
        timer.lap("resolve")
        base_config = base_image.result()

        work = cache_root() / "contexts" / _context_name(spec)
        with _exclusive(work):
            runtime = assemble_runtime_base(base_config, BaseFacts.from_probe(probe), wheels, work / "runtime-base",
                                            runtime_sbom(wheels))
            timer.lap("runtime_base")
            return _build_layers(spec, backend, options, timer, work, deps, base, target, runtime, client,
                                 _Asked(previous, lookup, source, committed), request)


def _install_client(target: PythonTarget, refresh: bool) -> ClientLayer:
    """The S3 client's tree, and its layer's tarball at once (cached by its trees, as a step's deps layer)."""
    client = install_client(target, refresh=refresh)
    cached_layer_tar(client.mappings)
    return client


@dataclass(frozen=True)
class _Asked:
    """Questions to the engine and to git asked at the start of a build, whose answers are needed late."""

    previous: Future[ImageInfo | None]  # the image the tag named
    base: BaseLookup  # confirm() before loading
    source: Future[SourceInfo]
    commit_time: Future[int | None] | None  # None: SOURCE_DATE_EPOCH given


def _deps_request(target: PythonTarget, options: BuildOptions, pack: bool) -> DepsRequest:
    return DepsRequest(target, bytecode_compiler(target, options.bytecode), options.cache, refresh=options.no_cache,
                       locked=options.locked, pack=pack)


@contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """Two builds of the same pipeline at once would share these directories: they take turns."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_layers(spec: PipelineSpec, backend: Backend, options: BuildOptions, timer: Timer, work: Path,
                  deps: dict[str, StepDeps], base: str, target: PythonTarget, runtime: RuntimeBase,
                  client: ClientLayer | None, asked: _Asked, request: DepsRequest) -> BuildResult:
    plan = _plan(spec, pipeline_files(spec, work / "pipeline-files"), runtime, client, deps, options, request)
    if plan.shared_steps:
        log.warning("layer budget %d: steps %s share one deps and one code layer", plan.budget,
                    ", ".join(plan.shared_steps))
    tars = write_layer_tars(plan.layers, work / "tars", backend.events)
    timer.lap("stage")

    # Every layer's digest is its tarball's: the labels naming them are written before any engine runs.
    created = created_time(options.timestamp if asked.commit_time is None else asked.commit_time.result())
    labels = oci_labels(spec, asked.source.result(), base, runtime.base.id, created) | dict(options.labels)
    # The runtime base's layers are named too (kind `base`: no step's), so inspect and sbom can find them.
    named: list[dict[str, object]] = [{"digest": layer.digest, "kind": "base", "name": layer.name, "steps": []}
                                      for layer in runtime.layers]
    named += [labelled_layer(layer, tars[layer.name]) for layer in plan.layers]
    labels |= layer_labels(named, plan.base_layers, plan.shared_steps, [step.name for step in spec.packaged_steps])
    new_layers = runtime.layers + tuple(NewLayer(layer.name, _history(layer), tars[layer.name])
                                        for layer in plan.layers)
    asked.base.confirm()
    previous = asked.previous.result()
    loaded = load_image(backend, assemble(runtime.base, new_layers, labels, created), options.tag, work,
                        base_layers=len(runtime.base.diff_ids), previous=previous, cache=options.cache,
                        fetch_reused=options.fetch_reused, no_cache=options.no_cache)
    final = loaded.info
    cached = tuple(position < loaded.held for position in range(len(new_layers)))
    layers = _layer_reports(plan, runtime, final, cached, None if previous is None else set(previous.diff_ids))
    timer.lap("load")
    timer.total()
    return BuildResult(
        tag=options.tag, image_id=final.id, backend=backend.name, base=base,
        runtime_base=f"{RUNTIME_BASE_NAME}:{runtime.key}", runtime_base_reused=loaded.held >= len(runtime.layers),
        python=f"CPython {target.version} {target.machine} glibc {target.glibc}", platform=str(target.platform),
        layers=layers,
        shared_steps=list(plan.shared_steps), layer_budget=plan.budget, labels=labels, timings=timer.timings,
        manifest_digest=final.manifest_digest if loaded.loaded else None,
        sboms=_sboms(plan, runtime, deps, client), loaded=loaded.loaded, image=loaded.image,
        cache_images=options.cache.describe(),
    )


def _plan(spec: PipelineSpec, files: Path, runtime: RuntimeBase, client: ClientLayer | None,
          deps: dict[str, StepDeps], options: BuildOptions, request: DepsRequest) -> LayerPlan:
    """The layer plan; a reused step that the budget makes share a layer is installed after all (a shared
    layer is written here from every step's tree), and the plan made again."""
    while True:
        trees = {name: got.tree for name, got in deps.items() if got.tree is not None}
        plan = plan_layers(spec, {name: tree.wheels for name, tree in trees.items()}, files,
                           base_layers=len(runtime.base.diff_ids) + len(runtime.layers), budget=options.layer_budget,
                           sboms={name: tree.sbom for name, tree in trees.items()},
                           known_sizes={name: tree.size for name, tree in trees.items()},
                           first=(client.planned(),) if client else (), compiler=request.compiler,
                           keys={name: got.key for name, got in deps.items()},
                           reused={name: got.reused for name, got in deps.items() if got.reused is not None})
        sharing = [name for name in plan.shared_steps if name in deps and deps[name].reused is not None]
        if not sharing:
            return plan
        for name in sharing:
            deps[name] = get_step_deps(spec.step(name), request, reuse=False)


def labelled_layer(layer: PlannedLayer, tar: LayerTar | RemoteLayer) -> dict[str, object]:
    """A layer as the layers label names it; a deps layer with its key (what `--cache-from` looks up), its
    content size and its tar's length (what a build that reuses it reports and loads)."""
    entry: dict[str, object] = {"digest": tar.sha256, "kind": layer.kind, "name": layer.name,
                                "steps": list(layer.steps)}
    if layer.key:
        tar_bytes = tar.tar_bytes if isinstance(tar, RemoteLayer) else tar.path.stat().st_size
        entry |= {"key": layer.key, "size": layer.size, "tar_bytes": tar_bytes}
    return entry


def _sboms(plan: LayerPlan, runtime: RuntimeBase, deps: dict[str, StepDeps],
           client: ClientLayer | None) -> list[dict[str, object]]:
    """Where each SBOM is in the image, and what it lists (a reused layer's: what its lock pins, which is
    what its SBOM lists)."""
    sources = [(RUNTIME_SBOM, runtime.layers[-1].name, runtime.sbom)]
    if client is not None:
        sources.append((S3_CLIENT, S3_CLIENT, client.tree.sbom))
    listed: list[dict[str, object]] = []
    for name, got in deps.items():
        planned = plan.layer_of(name, "deps")
        if got.tree is not None:
            sources.append((name, planned.name if planned else "", got.tree.sbom))
        else:
            listed.append({"name": name, "path": str(SBOM_ROOT / sbom_file(name)), "layer": planned.name if planned
                           else "", "packages": {pin.name: pin.version for pin in got.lock.pins}})
    for name, layer, directory in sources:
        document = json.loads((directory / sbom_file(name)).read_text())
        listed.append({"name": name, "path": str(SBOM_ROOT / sbom_file(name)), "layer": layer,
                       "packages": {c["name"]: c.get("version", "") for c in document.get("components", [])}})
    return sorted(listed, key=lambda entry: str(entry["name"]) != RUNTIME_SBOM)


def _history(layer: PlannedLayer) -> str:
    steps = f" of step{'s' if len(layer.steps) > 1 else ''} {', '.join(layer.steps)}" if layer.steps else ""
    return f"imagekit: {layer.kind} layer{steps} ({layer.name}.tar)"


def _context_name(spec: PipelineSpec) -> str:
    where = hashlib.sha256(str(spec.file).encode()).hexdigest()[:10]
    return f"{spec.name}-{where}"


def _layer_reports(plan: LayerPlan, runtime: RuntimeBase, image: ImageInfo, cached: tuple[bool, ...],
                   previous: set[str] | None) -> list[LayerReport]:
    """One report per layer of the image: the base's, the runtime base's (both kind `base`), then the plan's."""
    base_layers = len(runtime.base.diff_ids)
    names = [f"base-{index}" for index in range(base_layers)] + [layer.name for layer in runtime.layers]
    reports = []
    for index, digest in enumerate(image.diff_ids):
        size = image.layer_sizes[index] if index < len(image.layer_sizes) else None
        unchanged = None if previous is None else digest in previous
        position = index - base_layers  # among the layers imagekit wrote
        held = cached[position] if 0 <= position < len(cached) else position < 0
        if index < plan.base_layers:
            reports.append(LayerReport(index, names[index], "base", [], digest, size, held, unchanged))
            continue
        planned = plan.layers[index - plan.base_layers]
        reports.append(LayerReport(index, planned.name, planned.kind, list(planned.steps), digest,
                                   size if size is not None else planned.size, held, unchanged,
                                   from_registry=planned.reused is not None))
    return reports
