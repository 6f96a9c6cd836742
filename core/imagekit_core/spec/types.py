"""The typed pipeline and step specs (what `spec.load_pipeline` makes) and the names' grammar.

Consumers import them from `imagekit_core.spec`, which re-exports them with the loader.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from imagekit_core.contract import DEFAULT_PV, DEFAULT_SSD, StepKind
from imagekit_core.errors import SpecError
from imagekit_core.platforms import Platform
from imagekit_core.spec.sources import SinkSpec, SourceSpec, Transfer, placeholders_in
from imagekit_core.spec.stepfiles import package_digest

# Names become file names, Kubernetes labels and pod names: a step's at most 63 characters (a label value),
# a pipeline's at most 52 (its pods' names add -<ordinal> and the controller's revision label 11 more), a data
# name's at most 100 (directory and checkpoint names add to it below the 255 bytes of a file name).
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
PIPELINE_NAME_MAX = 52
DATA_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,98}[a-zA-Z0-9])?\Z")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # a param or env name, as a shell takes it

STEP_KEYS = {"name", "command", "inputs", "outputs", "requirements", "retries", "env", "description", "kind", "warm"}
PIPELINE_KEYS = {
    "name", "base", "steps", "shm", "parallelism", "checkpoint", "shards", "results",
    "description", "licenses", "grace_seconds", "params", "warm_slots", "sources", "sinks", "platforms",
}
PARALLELISM_KEYS = {"cpu", "io"}
CHECKPOINT_KEYS = {"ssd", "pv", "major", "retention"}
DEFAULT_BASE = "python:3.11-slim-bookworm"

@dataclass(frozen=True)
class StepSpec:
    name: str
    directory: Path
    command: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    requirements: Path | None = None
    retries: int = 0
    env: tuple[tuple[str, str], ...] = ()
    source_file: Path = field(default=Path("step.yaml"))
    kind: StepKind = StepKind.CPU  # which parallelism limit it counts against
    warm: bool = False             # started before its inputs are committed; waits for them (gates.py)
    transfer: Transfer | None = None  # a built-in step of a source or sink (sources.py): no package

    @property
    def requirements_text(self) -> str:
        return self.requirements.read_text() if self.requirements else ""

    def content_hash(self) -> str:
        """Hash of everything that decides what this step does: its settings and its package's files
        (stepfiles.py: the same files, kinds and modes as its code layer holds)."""
        digest = hashlib.sha256()
        digest.update(repr((self.name, self.command, self.inputs, self.outputs, self.env)).encode())
        digest.update(repr(self.transfer).encode() if self.transfer else package_digest(self.directory).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointSpec:
    ssd: Path | None = Path(DEFAULT_SSD)
    pv: Path | None = Path(DEFAULT_PV)
    major: tuple[str, ...] = ()
    retention: int = 2  # completed runs kept per shard


@dataclass(frozen=True)
class Parallelism:
    """`parallelism`: steps running at once per kind; None is the default, known only where the run is
    (slots.py: cpu = the CPUs the pod may use, io = 4 × the cpu limit)."""

    cpu: int | None = None
    io: int | None = None


@dataclass(frozen=True)
class PlatformBase:
    """One entry of `platforms:`: a platform the image is built for, and its base when the pipeline names
    one (None: `base:`, a multi-platform image or this machine's platform)."""

    platform: Platform
    base: str | None = None


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    file: Path
    base: str
    steps: tuple[StepSpec, ...]
    shm_bytes: int
    parallelism: Parallelism
    checkpoint: CheckpointSpec
    shards: int
    results: tuple[str, ...]
    grace_seconds: float = 10.0
    params: tuple[tuple[str, str], ...] = ()
    description: str = ""  # the image's org.opencontainers.image.description
    licenses: str = ""  # SPDX expression: the image's org.opencontainers.image.licenses
    warm_slots: int | None = None  # warm steps waiting at once; None: the cpu limit
    sources: tuple[SourceSpec, ...] = ()  # each also a built-in step in `steps`, before the packaged ones
    sinks: tuple[SinkSpec, ...] = ()      # each also a built-in step in `steps`, after them
    platforms: tuple[PlatformBase, ...] = ()  # what `imagekit build` builds for; () = the base's platform

    @property
    def packaged_steps(self) -> tuple[StepSpec, ...]:
        """The steps built from a package (step.yaml): all but the built-in steps of sources and sinks."""
        return tuple(step for step in self.steps if step.transfer is None)

    @property
    def uses_s3(self) -> bool:
        return any(t.scheme == "s3" for t in self.sources) or any(t.scheme == "s3" for t in self.sinks)

    @property
    def uses_run_name(self) -> bool:  # a source or sink URL names {run}, the job's run name ($IMAGEKIT_RUN)
        return any("run" in placeholders_in(url) for url in [t.url for t in self.sources] + [t.url for t in self.sinks])

    @property
    def directory(self) -> Path:
        return self.file.parent

    @functools.cached_property
    def _by_name(self) -> dict[str, StepSpec]:
        return {step.name: step for step in self.steps}

    def step(self, name: str) -> StepSpec:
        return self._by_name[name]

    def producer_of(self) -> dict[str, str]:
        return {data: step.name for step in self.steps for data in step.outputs}

    def consumers_of(self) -> dict[str, list[str]]:
        consumers: dict[str, list[str]] = {data: [] for step in self.steps for data in step.outputs}
        for step in self.steps:
            for data in step.inputs:
                consumers.setdefault(data, []).append(step.name)
        return consumers

    def topological_order(self) -> list[str]:
        """Step names in an order where every producer precedes its consumers (stable by file order)."""
        return topological_order(self, self.file)

    def content_key(self, base: str | None = None) -> str:
        """12 hex digits that change whenever anything an image of this pipeline holds does: the pipeline
        file, the base (`base` overrides the pipeline's) and every step's content hash. The default tag."""
        digest = hashlib.sha256(self.file.read_bytes())
        digest.update((base or self.base).encode())
        for step in self.steps:
            digest.update(step.content_hash().encode())
        return digest.hexdigest()[:12]


def topological_order(spec: PipelineSpec, path: Path) -> list[str]:
    producers = spec.producer_of()
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    by_name = {step.name: step for step in spec.steps}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = trail[trail.index(name):] + [name]
            raise SpecError(path, "steps", f"the steps form a cycle: {' -> '.join(cycle)}",
                            "remove one of the inputs in the cycle")
        state[name] = 1
        for data in by_name[name].inputs:
            visit(producers[data], trail + [name])
        state[name] = 2
        order.append(name)

    for step in spec.steps:
        visit(step.name, [])
    return order
