"""Typed pipeline and step specs, parsed and validated once.

Nothing else in imagekit reads pipeline.yaml or step.yaml: every consumer
(runtime, build, deploy) takes a `PipelineSpec` from `load_pipeline`.
Every error is a `SpecError` whose message is one line naming the file,
the field and the fix.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError
from .stepfiles import package_digest

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
DATA_NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]i?|[kmgtp]|)[bB]?\s*$")
SIZE_FACTORS = {
    "": 1,
    "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
    "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5,
}

STEP_KEYS = {"name", "command", "inputs", "outputs", "requirements", "retries", "env", "description"}
PIPELINE_KEYS = {
    "name", "base", "steps", "shm", "parallelism", "checkpoint", "shards", "results",
    "description", "licenses", "grace_seconds", "params",
}
CHECKPOINT_KEYS = {"ssd", "pv", "major", "retention"}
DEFAULT_BASE = "python:3.11-slim-bookworm"
DEFAULT_SSD = "/var/lib/imagekit/ssd"
DEFAULT_PV = "/var/lib/imagekit/pv"


def parse_size(value: Any, file: Path | str, field_name: str) -> int:
    """Parse a Kubernetes-style quantity (`1Gi`, `512Mi`, `100M`, `4096`) into bytes."""
    if isinstance(value, bool):
        raise SpecError(file, field_name, f"{value!r} is not a size", "use a quantity such as 512Mi or 1Gi")
    if isinstance(value, int):
        if value <= 0:
            raise SpecError(file, field_name, f"{value} is not a positive size", "use a quantity such as 512Mi or 1Gi")
        return value
    match = SIZE_RE.match(str(value))
    if not match:
        raise SpecError(file, field_name, f"{value!r} is not a size", "use a quantity such as 512Mi or 1Gi")
    number, unit = match.groups()
    size = int(float(number) * SIZE_FACTORS[unit])
    if size <= 0:
        raise SpecError(file, field_name, f"{value!r} is not a positive size", "use a quantity such as 512Mi or 1Gi")
    return size


def format_size(size: int) -> str:
    """Human-readable binary size: 1.5 GiB, 64.0 MiB, 512 B."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def env_name(data_name: str) -> str:
    """Data name to the suffix of IMAGEKIT_IN_/IMAGEKIT_OUT_: upper case, `-` as `_`."""
    return data_name.upper().replace("-", "_")


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

    @property
    def requirements_text(self) -> str:
        return self.requirements.read_text() if self.requirements else ""

    def content_hash(self) -> str:
        """Hash of everything that decides what this step does: its settings and its package's files
        (stepfiles.py: the same files, kinds and modes as its code layer holds)."""
        digest = hashlib.sha256()
        digest.update(repr((self.name, self.command, self.inputs, self.outputs, self.env)).encode())
        digest.update(package_digest(self.directory).encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class CheckpointSpec:
    ssd: Path | None = Path(DEFAULT_SSD)
    pv: Path | None = Path(DEFAULT_PV)
    major: tuple[str, ...] = ()
    retention: int = 2  # completed runs kept per shard


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    file: Path
    base: str
    steps: tuple[StepSpec, ...]
    shm_bytes: int
    parallelism: int
    checkpoint: CheckpointSpec
    shards: int
    results: tuple[str, ...]
    grace_seconds: float = 10.0
    params: tuple[tuple[str, str], ...] = ()
    description: str = ""  # the image's org.opencontainers.image.description
    licenses: str = ""  # SPDX expression: the image's org.opencontainers.image.licenses

    @property
    def directory(self) -> Path:
        return self.file.parent

    def step(self, name: str) -> StepSpec:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

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


def _load_yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(path, "-", "file not found", "check the path") from None
    except IsADirectoryError:
        raise SpecError(path, "-", "is a directory", "point at the YAML file itself") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(path, where, f"invalid YAML: {problem}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise SpecError(path, "-", "top level is not a mapping", "write `key: value` pairs at the top level")
    return data


def _check_keys(data: dict[str, Any], allowed: set[str], path: Path, prefix: str = "") -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(path, f"{prefix}{key}", "unknown key", f"remove it; allowed keys: {', '.join(sorted(allowed))}")


def _string_list(value: Any, path: Path, field_name: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(path, field_name, "must be a list of strings", f"write `{field_name}: [a, b]`")
    for item in value:
        if pattern is not None and not pattern.match(item):
            raise SpecError(path, field_name, f"bad name {item!r}", "use letters, digits, '-' and '_' only")
    if len(set(value)) != len(value):
        raise SpecError(path, field_name, "lists a name twice", "list each name once")
    return tuple(value)


def _positive_int(value: Any, path: Path, field_name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(path, field_name, f"{value!r} is not a whole number >= {minimum}", f"set it to a whole number >= {minimum}")
    return value


def load_step(directory: Path) -> StepSpec:
    """Parse `directory/step.yaml` into a StepSpec."""
    if not directory.is_dir():
        raise SpecError(directory, "-", "step directory not found", "create it or fix the path in `steps`")
    path = directory / "step.yaml"
    if not path.is_file():
        raise SpecError(path, "-", "step.yaml not found", "add a step.yaml with name and command")
    data = _load_yaml_mapping(path)
    _check_keys(data, STEP_KEYS, path)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(path, "name", f"{name!r} is not a valid step name", "use lower-case letters, digits and '-'")
    command = data.get("command")
    if command is None:
        raise SpecError(path, "command", "missing", "add `command: [python3, main.py]`")
    if isinstance(command, str):
        import shlex

        command = shlex.split(command)
    if not isinstance(command, list) or not command or not all(isinstance(part, (str, int, float)) for part in command):
        raise SpecError(path, "command", "must be a non-empty list of strings", "write `command: [python3, main.py]`")
    requirements = data.get("requirements")
    requirements_path: Path | None = None
    if requirements is not None:
        if not isinstance(requirements, str) or not requirements:
            raise SpecError(path, "requirements", "must be a file name", "write `requirements: requirements.txt`")
        requirements_path = (directory / requirements).resolve()
        if not requirements_path.is_file():
            raise SpecError(path, "requirements", f"{requirements} not found in {directory}", "add the file or remove the key")
    retries = _positive_int(data.get("retries", 0), path, "retries", minimum=0)
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise SpecError(path, "env", "must be a mapping", "write `env: {KEY: value}`")
    return StepSpec(
        name=name,
        directory=directory.resolve(),
        command=tuple(str(part) for part in command),
        inputs=_string_list(data.get("inputs"), path, "inputs", DATA_NAME_RE),
        outputs=_string_list(data.get("outputs"), path, "outputs", DATA_NAME_RE),
        requirements=requirements_path,
        retries=retries,
        env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
        source_file=path.resolve(),
    )


def load_pipeline(path: Path | str) -> PipelineSpec:
    """Parse and validate a pipeline file (or a directory holding pipeline.yaml)."""
    path = Path(path)
    if path.is_dir():
        path = path / "pipeline.yaml"
    path = path.resolve() if path.exists() else path
    data = _load_yaml_mapping(path)
    _check_keys(data, PIPELINE_KEYS, path)

    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(path, "name", f"{name!r} is not a valid pipeline name", "use lower-case letters, digits and '-'")
    base = data.get("base", DEFAULT_BASE)
    if not isinstance(base, str) or not base:
        raise SpecError(path, "base", "must be an image reference", f"write `base: {DEFAULT_BASE}`")

    step_paths = data.get("steps")
    if not isinstance(step_paths, list) or not step_paths or not all(isinstance(p, str) for p in step_paths):
        raise SpecError(path, "steps", "must be a non-empty list of step package paths", "write `steps: [steps/fetch, steps/count]`")
    steps: list[StepSpec] = []
    seen_names: dict[str, str] = {}
    for index, relative in enumerate(step_paths):
        directory = path.parent / relative
        if not directory.is_dir():
            raise SpecError(path, f"steps[{index}]", f"step directory {relative!r} not found", "create it or fix the path")
        step = load_step(directory)
        if step.name in seen_names:
            raise SpecError(path, f"steps[{index}]", f"step name {step.name!r} is used by {seen_names[step.name]} too", "give each step a unique name")
        seen_names[step.name] = relative
        steps.append(step)

    shm_bytes = parse_size(data.get("shm", "1Gi"), path, "shm")
    parallelism = _positive_int(data.get("parallelism", 1), path, "parallelism")
    shards = _positive_int(data.get("shards", 1), path, "shards")
    grace = data.get("grace_seconds", 10)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise SpecError(path, "grace_seconds", f"{grace!r} is not a number of seconds", "set it to a number >= 0")

    checkpoint_data = data.get("checkpoint") or {}
    if not isinstance(checkpoint_data, dict):
        raise SpecError(path, "checkpoint", "must be a mapping", "write `checkpoint: {ssd: PATH, pv: PATH, major: [names]}`")
    _check_keys(checkpoint_data, CHECKPOINT_KEYS, path, "checkpoint.")
    checkpoint = CheckpointSpec(
        ssd=_optional_path(checkpoint_data, "ssd", DEFAULT_SSD, path),
        pv=_optional_path(checkpoint_data, "pv", DEFAULT_PV, path),
        major=_string_list(checkpoint_data.get("major"), path, "checkpoint.major", DATA_NAME_RE),
        retention=_positive_int(checkpoint_data.get("retention", 2), path, "checkpoint.retention"),
    )
    results = _string_list(data.get("results"), path, "results", DATA_NAME_RE)

    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise SpecError(path, "params", "must be a mapping", "write `params: {KEY: value}`")

    spec = PipelineSpec(
        name=name,
        file=path,
        base=base,
        steps=tuple(steps),
        shm_bytes=shm_bytes,
        parallelism=parallelism,
        checkpoint=checkpoint,
        shards=shards,
        results=results,
        grace_seconds=float(grace),
        params=tuple(sorted((str(k), str(v)) for k, v in params.items())),
        description=_text(data, "description", path),
        licenses=_text(data, "licenses", path),
    )
    _validate_graph(spec)
    return spec


def _text(data: dict[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError(path, key, "must be a string", f"write `{key}: \"…\"`")
    return value.strip()


def _optional_path(data: dict[str, Any], key: str, default: str, path: Path) -> Path | None:
    value = data.get(key, default)
    if value is None or value is False:
        return None
    if not isinstance(value, str) or not value.startswith("/"):
        raise SpecError(path, f"checkpoint.{key}", f"{value!r} is not an absolute path", "use an absolute path, or null to disable")
    return Path(value)


def _validate_graph(spec: PipelineSpec) -> None:
    path = spec.file
    producers: dict[str, str] = {}
    for step in spec.steps:
        for data in step.outputs:
            if data in producers:
                raise SpecError(
                    step.source_file, "outputs",
                    f"data {data!r} is produced by both {producers[data]!r} and {step.name!r}",
                    "rename one of the outputs",
                )
            producers[data] = step.name
    for step in spec.steps:
        for data in step.inputs:
            if data not in producers:
                raise SpecError(step.source_file, "inputs", f"data {data!r} is consumed but no step produces it",
                                "add a step that outputs it or remove the input")
            if producers[data] == step.name:
                raise SpecError(step.source_file, "inputs", f"step reads its own output {data!r}", "remove the input")
    for index, data in enumerate(spec.results):
        if data not in producers:
            raise SpecError(path, f"results[{index}]", f"no step produces {data!r}", "name an output of one of the steps")
    for index, data in enumerate(spec.checkpoint.major):
        if data not in producers:
            raise SpecError(path, f"checkpoint.major[{index}]", f"no step produces {data!r}", "name an output of one of the steps")
    topological_order(spec, path)


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
            raise SpecError(path, "steps", f"the steps form a cycle: {' -> '.join(cycle)}", "remove one of the inputs in the cycle")
        state[name] = 1
        for data in by_name[name].inputs:
            visit(producers[data], trail + [name])
        state[name] = 2
        order.append(name)

    for step in spec.steps:
        visit(step.name, [])
    return order
