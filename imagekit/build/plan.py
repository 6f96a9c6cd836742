"""The layer plan: which files go into which layer, in which order.

    base layers │ (s3-client) │ deps A │ deps B │ … │ pipeline │ code A │ code B │ …

Stable layers first: dependency trees change rarely and are large, the pipeline
layer (pipeline.yaml and the resolved graph, a few KiB) changes when pipeline.yaml
is edited, step code changes most often. Every layer above a changed one is
applied again by the engine (same digest, new chain), so the layers that change
most go on top. A step without requirements has no deps layer; the S3 client's
layer (s3client.py) is there only when the pipeline uses s3.
Above the layer budget the smallest steps share one deps and one code layer
(containerd refuses images of more than 127 layers).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from imagekit_core import contract
from imagekit_core.errors import SpecError, UsageError
from imagekit_core.spec import PipelineSpec, StepSpec

from .bytecode import Compiler
from .reuse import RemoteLayer
from .tarball import Mapping, tree_size
from .wheeltree import WheelTree

IMAGE_ROOT = PurePosixPath(contract.IMAGE_ROOT)
PIPELINE_ROOT = PurePosixPath(contract.IMAGE_PIPELINE_DIR)
DEPS_ROOT = PurePosixPath(contract.IMAGE_DEPS_ROOT)
SBOM_ROOT = PurePosixPath(contract.IMAGE_SBOM_DIR)
DEFAULT_LAYER_BUDGET = 100
CONTAINERD_LAYER_LIMIT = 127
SHARED = "shared"


@dataclass(frozen=True)
class PlannedLayer:
    name: str  # file name stem in the build context: deps-tokenize, code-shared, pipeline
    kind: str  # deps | code | pipeline
    steps: tuple[str, ...]
    mappings: tuple[Mapping, ...]  # none when reused
    size: int
    key: str = ""  # deps layers: what they are made of (deps.deps_layer_key), recorded in the labels
    reused: RemoteLayer | None = None  # taken from a cache image (reuse.py), not written here


@dataclass(frozen=True)
class LayerPlan:
    layers: tuple[PlannedLayer, ...]
    base_layers: int
    budget: int
    shared_steps: tuple[str, ...] = ()  # steps that share layers because of the budget
    sizes: dict[str, int] = field(default_factory=dict)  # per step: deps + code bytes

    @property
    def total_layers(self) -> int:
        return self.base_layers + len(self.layers)

    def layer_of(self, step: str, kind: str) -> PlannedLayer | None:
        for layer in self.layers:
            if layer.kind == kind and step in layer.steps:
                return layer
        return None


def step_image_path(spec: PipelineSpec, step: StepSpec) -> PurePosixPath:
    """Where a step package lives in the image: at its path relative to pipeline.yaml."""
    try:
        relative = step.directory.resolve().relative_to(spec.directory.resolve())
    except ValueError:
        raise SpecError(step.source_file, "-", f"step directory {step.directory} is outside the pipeline directory "
                        f"{spec.directory}", "move the step package under the pipeline's directory") from None
    return PIPELINE_ROOT / relative.as_posix()


def deps_mappings(step: str, tree: Path | WheelTree, sbom: Path | None,
                  compiler: Compiler | None = None) -> tuple[Mapping, ...]:
    """What a step's deps layer holds: its tree at DEPS_ROOT/<step> (with its bytecode, given a compiler),
    its SBOM's directory at SBOM_ROOT."""
    return (*tree_mappings(tree, DEPS_ROOT / step, compiler),
            *((Mapping(sbom, SBOM_ROOT),) if sbom is not None else ()))


def tree_mappings(tree: Path | WheelTree, target: PurePosixPath, compiler: Compiler | None) -> tuple[Mapping, ...]:
    """A tree at target, and, given a compiler, the bytecode of its Python files beside them."""
    return (Mapping(tree, target), *((Mapping(compiler.compiled(tree, target), target),) if compiler else ()))


def plan_layers(
    spec: PipelineSpec,
    deps_trees: dict[str, Path | WheelTree],
    pipeline_files: Path,
    *,
    base_layers: int,
    budget: int = DEFAULT_LAYER_BUDGET,
    sboms: dict[str, Path] | None = None,
    known_sizes: dict[str, int] | None = None,
    first: tuple[PlannedLayer, ...] = (),
    compiler: Compiler | None = None,
    keys: dict[str, str] | None = None,
    reused: dict[str, RemoteLayer] | None = None,
) -> LayerPlan:
    """Lay out the pipeline's layers on top of `base_layers` base layers, within `budget` layers in all.
    sboms: per step, a directory whose files (its SBOM) go to SBOM_ROOT in the step's deps layer;
    known_sizes: per step, its deps tree's size when known (else the tree is walked);
    first: layers of no step that go under every step's (the S3 client's, s3client.py);
    compiler: compiles the bytecode deps and code layers carry (bytecode.py), None for none;
    keys: per step, its deps layer's key; reused: per step, its deps layer taken from a cache image (no
    tree: a step sharing layers under the budget must be installed instead, see shared_steps)."""
    keys, reused = keys or {}, reused or {}
    if budget > CONTAINERD_LAYER_LIMIT:
        raise UsageError(f"--layer-budget {budget} is above containerd's limit of {CONTAINERD_LAYER_LIMIT} layers")
    deps_mapping: dict[str, tuple[Mapping, ...]] = {}
    code_mapping: dict[str, tuple[Mapping, ...]] = {}
    sizes: dict[str, int] = {}
    deps_sizes: dict[str, int] = {}
    code_sizes: dict[str, int] = {}
    for step in spec.packaged_steps:
        code_mapping[step.name] = tree_mappings(step.directory, step_image_path(spec, step), compiler)
        code_sizes[step.name] = sum(tree_size(mapping.source) for mapping in code_mapping[step.name])
        if step.name in deps_trees:
            deps_mapping[step.name] = deps_mappings(step.name, deps_trees[step.name], (sboms or {}).get(step.name),
                                                    compiler)
            deps_sizes[step.name] = (known_sizes or {}).get(step.name) or tree_size(deps_trees[step.name])
        elif step.name in reused:
            deps_mapping[step.name] = ()
            deps_sizes[step.name] = reused[step.name].size
        sizes[step.name] = code_sizes[step.name] + deps_sizes.get(step.name, 0)

    available = budget - base_layers - 1 - len(first)  # the pipeline layer is always there
    shared = _choose_shared(spec, sizes, deps_mapping, available, budget, base_layers)
    alone = [step.name for step in spec.packaged_steps if step.name not in shared]
    shared_in_order = tuple(step.name for step in spec.packaged_steps if step.name in shared)

    layers: list[PlannedLayer] = list(first)
    for name in alone:
        if name in deps_mapping:
            layers.append(PlannedLayer(f"deps-{name}", "deps", (name,), deps_mapping[name], deps_sizes[name],
                                       keys.get(name, ""), reused.get(name)))
    shared_deps = [name for name in shared_in_order if name in deps_mapping]
    if shared_deps:
        layers.append(PlannedLayer(f"deps-{SHARED}", "deps", tuple(shared_deps),
                                   tuple(m for n in shared_deps for m in deps_mapping[n]),
                                   sum(deps_sizes[n] for n in shared_deps), _joined_key(shared_deps, keys)))
    layers.append(PlannedLayer("pipeline", "pipeline", (), (Mapping(pipeline_files, PIPELINE_ROOT),),
                               tree_size(pipeline_files)))
    for name in alone:
        layers.append(PlannedLayer(f"code-{name}", "code", (name,), code_mapping[name], code_sizes[name]))
    if shared_in_order:
        layers.append(PlannedLayer(f"code-{SHARED}", "code", shared_in_order,
                                   tuple(m for n in shared_in_order for m in code_mapping[n]),
                                   sum(code_sizes[n] for n in shared_in_order)))
    return LayerPlan(layers=tuple(layers), base_layers=base_layers, budget=budget, shared_steps=shared_in_order,
                     sizes=sizes)


def _joined_key(steps: list[str], keys: dict[str, str]) -> str:
    """The key of a layer several steps share: of theirs, in order (none when one has none)."""
    if not all(keys.get(step) for step in steps):
        return ""
    return "sha256:" + hashlib.sha256("\0".join(keys[step] for step in steps).encode()).hexdigest()


def _choose_shared(spec: PipelineSpec, sizes: dict[str, int], deps_mapping: dict[str, tuple[Mapping, ...]],
                   available: int,
                   budget: int, base_layers: int) -> set[str]:
    """The smallest steps, as few as possible, whose sharing brings the layer count within the budget."""

    def cost(shared: set[str]) -> int:
        alone = [s.name for s in spec.packaged_steps if s.name not in shared]
        count = len(alone) + sum(1 for name in alone if name in deps_mapping)
        if shared:
            count += 1 + (1 if any(name in deps_mapping for name in shared) else 0)
        return count

    shared: set[str] = set()
    by_size = sorted(spec.packaged_steps, key=lambda s: (sizes[s.name], s.name))
    for step in by_size:
        if cost(shared) <= available:
            return shared
        shared.add(step.name)
    if cost(shared) <= available:
        return shared
    raise UsageError(f"--layer-budget {budget}: {base_layers} base layers and the pipeline layer leave room for "
                     f"{max(available, 0)} step layers, fewer than shared steps need; "
                     f"use at least {base_layers + 3}")
