"""Typed pipeline and step specs, parsed and validated once.

Nothing else in imagekit reads pipeline.yaml or step.yaml: every consumer (runtime, build, deploy) takes a
`PipelineSpec` from `load_pipeline`. Every error is a `SpecError`: one line naming the file, the field and the fix.
"""
from __future__ import annotations

import functools
import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import DEFAULT_PV, DEFAULT_SSD, StepKind, env_name, output_var
from .errors import SpecError
from .quantity import parse_bytes
from .spec_sources import TRANSFER_MODULE, SinkSpec, SourceSpec, Transfer, parse_transfers, placeholders_in
from .spec_yaml import YamlFile, is_dir, is_file
from .stepfiles import package_digest

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
DATA_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?\Z")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")  # a param or env name, as a shell takes it

STEP_KEYS = {"name", "command", "inputs", "outputs", "requirements", "retries", "env", "description", "kind", "warm"}
PIPELINE_KEYS = {
    "name", "base", "steps", "shm", "parallelism", "checkpoint", "shards", "results",
    "description", "licenses", "grace_seconds", "params", "warm_slots", "sources", "sinks",
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
    transfer: Transfer | None = None  # a built-in step of a source or sink (spec_sources.py): no package

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


def _name(source: YamlFile, kind: str) -> str:
    """The `name` of a step or pipeline: lower-case letters, digits and '-'."""
    name = source.data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise source.error("name", f"{name!r} is not a valid {kind} name", "use lower-case letters, digits and '-'")
    return name


def load_step(directory: Path) -> StepSpec:
    """Parse `directory/step.yaml` into a StepSpec."""
    return _parse_step(directory)[0]


def _parse_step(directory: Path) -> tuple[StepSpec, YamlFile]:
    """The step and its parsed step.yaml (for later errors that name a line in it)."""
    if not is_dir(directory):
        raise SpecError(directory, "-", "step directory not found", "create it or fix the path in `steps`")
    directory = directory.resolve()
    path = directory / "step.yaml"
    if not is_file(path):
        raise SpecError(path, "-", "step.yaml not found", "add a step.yaml with name and command")
    source = YamlFile.load(path)
    data = source.data
    source.check_keys(data, STEP_KEYS)
    name = _name(source, "step")
    requirements = data.get("requirements")
    requirements_path: Path | None = None
    if requirements is not None:
        if not isinstance(requirements, str):
            raise source.error("requirements", "must be a file name", "write `requirements: requirements.txt`")
        requirements_path = source.path_inside(requirements, "requirements", directory, "the step directory")
        if not is_file(requirements_path):
            raise source.error("requirements", f"{requirements!r} not found in {directory}",
                               "add the file or remove the key")
    step = StepSpec(
        name=name,
        directory=directory,
        command=_command(source, data.get("command")),
        inputs=source.string_list(data.get("inputs"), "inputs", DATA_NAME_RE),
        outputs=source.string_list(data.get("outputs"), "outputs", DATA_NAME_RE),
        requirements=requirements_path,
        retries=source.whole_number(data.get("retries", 0), "retries", minimum=0),
        env=source.variables(data.get("env"), "env", VARIABLE_NAME_RE),
        source_file=path,
        kind=_kind(source, data.get("kind", StepKind.CPU.value)),
        warm=source.boolean(data.get("warm", False), "warm"),
    )
    return step, source


def _kind(source: YamlFile, kind: Any) -> StepKind:
    if kind not in tuple(StepKind):
        raise source.error("kind", f"{kind!r} is not a step kind",
                           "write `kind: cpu` (compute-bound, the default) or `kind: io` (waits on network or disk)")
    return StepKind(kind)


def _parallelism(source: YamlFile, value: Any) -> Parallelism:
    """A whole number (the cpu limit, as before step kinds) or {cpu: N, io: M}; absent: the run's defaults."""
    if value is None:
        return Parallelism()
    if not isinstance(value, dict):
        return Parallelism(cpu=source.whole_number(value, "parallelism"))
    source.check_keys(value, PARALLELISM_KEYS, "parallelism.")
    cpu, io = value.get("cpu"), value.get("io")
    return Parallelism(cpu=None if cpu is None else source.whole_number(cpu, "parallelism.cpu"),
                       io=None if io is None else source.whole_number(io, "parallelism.io"))


def _command(source: YamlFile, command: Any) -> tuple[str, ...]:
    if command is None:
        raise source.error("command", "missing", "add `command: [python3, main.py]`")
    if isinstance(command, str):
        try:
            command = shlex.split(command)
        except ValueError as exc:
            raise source.error("command", f"cannot be split into words ({exc})",
                               "write it as a list: `command: [python3, main.py]`") from None
    if not isinstance(command, list) or not command or not all(
            isinstance(part, (str, int, float)) and not isinstance(part, bool) for part in command):
        raise source.error("command", "must be a non-empty list of strings", "write `command: [python3, main.py]`")
    return tuple(str(part) for part in command)


def _step_directories(source: YamlFile, step_paths: Any) -> list[Path]:
    """The pipeline's step directories: each a directory below the pipeline's own, listed once."""
    if not isinstance(step_paths, list) or not step_paths or not all(isinstance(p, str) for p in step_paths):
        raise source.error("steps", "must be a non-empty list of step package paths",
                           "write `steps: [steps/fetch, steps/count]`")
    root = source.path.parent.resolve()
    directories = []
    for index, relative in enumerate(step_paths):
        field = f"steps[{index}]"
        directory = source.path_inside(relative, field, root, "the pipeline directory")
        if directory == root:
            raise source.error(field, f"{relative!r} is the pipeline directory itself",
                               "put each step in a directory of its own, e.g. steps/count")
        if not is_dir(directory):
            raise source.error(field, f"step directory {relative!r} not found", "create it or fix the path")
        directories.append(directory)
    return directories


def load_pipeline(path: Path | str) -> PipelineSpec:
    """Parse and validate a pipeline file (or a directory holding pipeline.yaml)."""
    path = Path(path)
    if is_dir(path):
        path = path / "pipeline.yaml"
    path = path.resolve() if is_file(path) else path
    source = YamlFile.load(path)
    data = source.data
    source.check_keys(data, PIPELINE_KEYS)

    name = _name(source, "pipeline")
    base = data.get("base", DEFAULT_BASE)
    if not isinstance(base, str) or not base:
        raise source.error("base", "must be an image reference", f"write `base: {DEFAULT_BASE}`")

    steps: list[StepSpec] = []
    step_sources: dict[str, YamlFile] = {}
    seen_names: dict[str, str] = {}
    for index, directory in enumerate(_step_directories(source, data.get("steps"))):
        step, step_source = _parse_step(directory)
        if step.name in seen_names:
            raise source.error(f"steps[{index}]", f"step name {step.name!r} is used by {seen_names[step.name]} too",
                               "give each step a unique name")
        seen_names[step.name] = data["steps"][index]
        step_sources[step.name] = step_source
        steps.append(step)
    params = source.variables(data.get("params"), "params", VARIABLE_NAME_RE)
    sources, sinks = parse_transfers(source, dict(params), {d: s.name for s in steps for d in s.outputs}, DATA_NAME_RE)

    try:
        shm_bytes = parse_bytes(data.get("shm", "1Gi"), file=path, field="shm")
    except SpecError as exc:
        raise source.error("shm", exc.problem, exc.fix) from None
    grace = data.get("grace_seconds", 10)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace < math.inf:
        raise source.error("grace_seconds", f"{grace!r} is not a number of seconds", "set it to a number >= 0")

    checkpoint_data = source.mapping(data.get("checkpoint"), "checkpoint", "{ssd: PATH, pv: PATH, major: [names]}")
    source.check_keys(checkpoint_data, CHECKPOINT_KEYS, "checkpoint.")
    checkpoint = CheckpointSpec(
        ssd=_optional_path(checkpoint_data, "ssd", DEFAULT_SSD, source),
        pv=_optional_path(checkpoint_data, "pv", DEFAULT_PV, source),
        major=source.string_list(checkpoint_data.get("major"), "checkpoint.major", DATA_NAME_RE),
        retention=source.whole_number(checkpoint_data.get("retention", 2), "checkpoint.retention"),
    )
    spec = PipelineSpec(
        name=name,
        file=path,
        base=base,
        steps=(*_transfer_steps(sources, path), *steps, *_transfer_steps(sinks, path)),
        shm_bytes=shm_bytes,
        parallelism=_parallelism(source, data.get("parallelism")),
        checkpoint=checkpoint,
        shards=source.whole_number(data.get("shards", 1), "shards"),
        results=source.string_list(data.get("results"), "results", DATA_NAME_RE),
        grace_seconds=float(grace),
        params=params, sources=sources, sinks=sinks,
        description=_text(source, "description"),
        licenses=_text(source, "licenses"),
        warm_slots=None if data.get("warm_slots") is None else source.whole_number(data["warm_slots"], "warm_slots"),
    )
    _validate_graph(spec, source, step_sources)
    return spec


def _transfer_steps(transfers: tuple[Transfer, ...], path: Path) -> list[StepSpec]:
    """The built-in steps of sources (output: the data item) or sinks (input: it); io steps, no package."""
    return [StepSpec(name=t.step_name, directory=path.parent, source_file=path, kind=StepKind.IO, transfer=t,
                     command=("python3", "-m", TRANSFER_MODULE, "sink" if isinstance(t, SinkSpec) else "fetch", t.name),
                     inputs=(t.name,) if isinstance(t, SinkSpec) else (), outputs=() if isinstance(t, SinkSpec) else (t.name,))
            for t in transfers]


def _text(source: YamlFile, key: str) -> str:
    """An optional free-text field (description, licenses): a string, stripped; "" when absent."""
    value = source.data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise source.error(key, "must be a string", f'write `{key}: "…"`')
    return value.strip()


def _optional_path(data: dict[str, Any], key: str, default: str, source: YamlFile) -> Path | None:
    value = data.get(key, default)
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value.startswith("/") or "\0" in value:
        raise source.error(f"checkpoint.{key}", f"{value!r} is not an absolute path",
                           "use an absolute path, or null to disable")
    return Path(value)


def _validate_graph(spec: PipelineSpec, source: YamlFile, step_sources: dict[str, YamlFile]) -> None:
    producers: dict[str, str] = {}
    by_env_name: dict[str, str] = {}
    for step in spec.steps:
        for index, data in enumerate(step.outputs):
            field_name = f"outputs[{index}]"
            if data in producers:
                raise step_sources.get(step.name, source).error(
                    field_name, f"data {data!r} is produced by both {producers[data]!r} and {step.name!r}",
                    "rename one of the outputs")
            other = by_env_name.setdefault(env_name(data), data)
            if other != data:
                raise step_sources.get(step.name, source).error(
                    field_name, f"data {data!r} and {other!r} (of step {producers[other]!r}) both become "
                    f"{output_var(data)}", "rename one of them")
            producers[data] = step.name
    for step in spec.steps:
        for index, data in enumerate(step.inputs):
            if data not in producers:
                raise step_sources.get(step.name, source).error(f"inputs[{index}]",
                                                    f"data {data!r} is consumed but no step produces it",
                                                    "add a step that outputs it or remove the input")
            if producers[data] == step.name:
                raise step_sources.get(step.name, source).error(f"inputs[{index}]", f"step reads its own output {data!r}",
                                                    "remove the input")
    for field_name, names in (("results", spec.results), ("checkpoint.major", spec.checkpoint.major)):
        for index, data in enumerate(names):
            if data not in producers:
                raise source.error(f"{field_name}[{index}]", f"no step produces {data!r}",
                                   "name an output of one of the steps")
    topological_order(spec, spec.file)


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
