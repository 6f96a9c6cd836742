"""Pipeline and step specs, parsed and validated once.

Nothing else in imagekit reads pipeline.yaml or step.yaml: every consumer (runtime, build, deploy) takes a
`PipelineSpec` from `load_pipeline`. Every error is a `SpecError`: one line naming the file, the field and the
fix; a pipeline with several problems raises `SpecProblems` naming each (problems.py). The types are in
types.py; the package (spec/__init__.py) offers both.
"""
from __future__ import annotations

import functools
import shlex
from pathlib import Path
from typing import Any

from imagekit_core.contract import DEFAULT_PV, DEFAULT_SSD, StepKind, env_name, output_var
from imagekit_core.errors import SpecError, UsageError
from imagekit_core.platforms import KNOWN, platform_named
from imagekit_core.references import parse_reference
from imagekit_core.spec.problems import Problems
from imagekit_core.spec.quantity import parse_bytes
from imagekit_core.spec.requirements import unsupported
from imagekit_core.spec.sources import TRANSFER_MODULE, SinkSpec, SourceSpec, Transfer, parse_transfers
from imagekit_core.spec.types import (
    CHECKPOINT_KEYS,
    DATA_NAME_RE,
    DEFAULT_BASE,
    NAME_RE,
    PARALLELISM_KEYS,
    PIPELINE_KEYS,
    PIPELINE_NAME_MAX,
    STEP_KEYS,
    VARIABLE_NAME_RE,
    CheckpointSpec,
    Parallelism,
    PipelineSpec,
    PlatformBase,
    StepSpec,
    topological_order,
)
from imagekit_core.spec.yaml_reader import YamlFile, is_dir, is_file


def _name(source: YamlFile, kind: str) -> str:
    """The `name` of a step or pipeline: lower-case letters, digits and '-'."""
    name = source.data.get("name")
    longest = PIPELINE_NAME_MAX if kind == "pipeline" else 63
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > longest:
        shown = name if not isinstance(name, str) or len(name) <= 80 else name[:80] + "…"
        raise source.error("name", f"{shown!r} is not a valid {kind} name",
                           f"use lower-case letters, digits and '-', at most {longest} characters")
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
    problems = Problems()
    problems.check(lambda: source.check_keys(data, STEP_KEYS), None)
    name = problems.check(lambda: _name(source, "step"), directory.name)
    requirements_path = problems.check(lambda: _requirements(source, directory), None)
    step = StepSpec(
        name=name,
        directory=directory,
        command=problems.check(lambda: _command(source, data.get("command")), ("true",)),
        inputs=problems.check(lambda: source.string_list(data.get("inputs"), "inputs", DATA_NAME_RE), ()),
        outputs=problems.check(lambda: source.string_list(data.get("outputs"), "outputs", DATA_NAME_RE), ()),
        requirements=requirements_path,
        retries=problems.check(lambda: source.whole_number(data.get("retries", 0), "retries", minimum=0), 0),
        env=problems.check(lambda: source.variables(data.get("env"), "env", VARIABLE_NAME_RE), ()),
        source_file=path,
        kind=problems.check(lambda: _kind(source, data.get("kind", StepKind.CPU.value)), StepKind.CPU),
        warm=problems.check(lambda: source.boolean(data.get("warm", False), "warm"), False),
    )
    problems.raise_any()
    return step, source


def _requirements(source: YamlFile, directory: Path) -> Path | None:
    requirements = source.data.get("requirements")
    if requirements is None:
        return None
    if not isinstance(requirements, str):
        raise source.error("requirements", "must be a file name", "write `requirements: requirements.txt`")
    requirements_path = source.path_inside(requirements, "requirements", directory, "the step directory")
    if not is_file(requirements_path):
        raise source.error("requirements", f"{requirements!r} not found in {directory}", "add the file or remove the key")
    found = unsupported(requirements_path)
    if found is not None:
        path, number, line, what = found
        raise SpecError(path, "requirements", f"{line!r} is {what}, which a build cannot pin by hash",
                        "publish the package as a wheel to an index (or a directory given with --find-links) and "
                        "require it by name and version, or put its code in the step", line=number)
    return requirements_path


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
    """Parse and validate a pipeline file (or a directory holding pipeline.yaml): SpecProblems names every
    problem found (each field checked on its own; the graph once the fields are right)."""
    path = Path(path)
    if is_dir(path):
        path = path / "pipeline.yaml"
    path = path.resolve() if is_file(path) else path
    source = YamlFile.load(path)
    data = source.data
    problems = Problems()
    problems.check(lambda: source.check_keys(data, PIPELINE_KEYS), None)
    name = problems.check(lambda: _name(source, "pipeline"), "pipeline")
    base = problems.check(lambda: _base(source), DEFAULT_BASE)
    steps, step_sources = _steps(source, problems)
    no_params: tuple[tuple[str, str], ...] = ()
    params = problems.check(lambda: source.variables(data.get("params"), "params", VARIABLE_NAME_RE), no_params)
    outputs = {d: s.name for s in steps for d in s.outputs}
    no_transfers: tuple[tuple[SourceSpec, ...], tuple[SinkSpec, ...]] = ((), ())
    sources, sinks = problems.check(lambda: parse_transfers(source, dict(params), outputs, DATA_NAME_RE), no_transfers)
    spec = PipelineSpec(
        name=name,
        file=path,
        base=base,
        steps=(*_transfer_steps(sources, path), *steps, *_transfer_steps(sinks, path)),
        shm_bytes=problems.check(lambda: _shm(source), 1 << 30),
        parallelism=problems.check(lambda: _parallelism(source, data.get("parallelism")), Parallelism()),
        checkpoint=problems.check(lambda: _checkpoint(source), CheckpointSpec()),
        shards=problems.check(lambda: source.whole_number(data.get("shards", 1), "shards"), 1),
        results=problems.check(lambda: source.string_list(data.get("results"), "results", DATA_NAME_RE), ()),
        grace_seconds=problems.check(lambda: _grace(source), 10.0),
        params=params, sources=sources, sinks=sinks,
        description=problems.check(lambda: _text(source, "description"), ""),
        licenses=problems.check(lambda: _text(source, "licenses"), ""),
        warm_slots=problems.check(lambda: _warm_slots(source), None),
        platforms=problems.check(lambda: _platforms(source), ()),
    )
    problems.raise_any()
    _validate_graph(spec, source, step_sources)
    return spec


def _steps(source: YamlFile, problems: Problems) -> tuple[list[StepSpec], dict[str, YamlFile]]:
    """Each step package parsed on its own: one bad step.yaml leaves the others checked."""
    steps: list[StepSpec] = []
    step_sources: dict[str, YamlFile] = {}
    seen_names: dict[str, str] = {}
    no_directories: list[Path] = []
    directories = problems.check(lambda: _step_directories(source, source.data.get("steps")), no_directories)
    for index, directory in enumerate(directories):
        parsed = problems.check(functools.partial(_parse_step, directory), None)
        if parsed is None:
            continue
        step, step_source = parsed
        if step.name in seen_names:
            problems.found.append(source.error(f"steps[{index}]", f"step name {step.name!r} is used by "
                                               f"{seen_names[step.name]} too", "give each step a unique name"))
            continue
        seen_names[step.name] = source.data["steps"][index]
        step_sources[step.name] = step_source
        steps.append(step)
    return steps, step_sources


def _base(source: YamlFile) -> str:
    base = source.data.get("base", DEFAULT_BASE)
    if not isinstance(base, str) or not base:
        raise source.error("base", "must be an image reference", f"write `base: {DEFAULT_BASE}`")
    return base


def _platforms(source: YamlFile) -> tuple[PlatformBase, ...]:
    """`platforms: [linux/amd64, linux/arm64]`, or a mapping of each platform to its base (an empty value:
    `base:`)."""
    value = source.data.get("platforms")
    if value is None:
        return ()
    example = "e.g. `platforms: [linux/amd64, linux/arm64]`"
    if isinstance(value, dict):
        entries = list(value.items())
    elif isinstance(value, list):
        entries = [(item, None) for item in value]
    else:
        raise source.error("platforms", "must be a list of platforms, or a mapping of each to its base", example)
    if not entries:
        raise source.error("platforms", "names no platform", f"name one or more ({example}), or leave it out")
    found: list[PlatformBase] = []
    for index, (name, base) in enumerate(entries):
        field = f"platforms[{index}]" if isinstance(value, list) else f"platforms.{name}"
        platform = platform_named(name) if isinstance(name, str) else None
        if platform is None:
            raise source.error(field, f"{name!r} is not a platform imagekit builds for", f"use one of {KNOWN}")
        if platform in (entry.platform for entry in found):
            raise source.error(field, f"{platform} is named twice", "name each platform once")
        if base is not None:
            if not isinstance(base, str):
                raise source.error(field, "the base must be an image reference",
                                   "e.g. `linux/arm64: imagekit/debian-python:bookworm-arm64`")
            try:
                parse_reference(base, field)
            except UsageError:
                raise source.error(field, f"{base!r} is not an image reference",
                                   "write [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]") from None
        found.append(PlatformBase(platform, base or None))
    return tuple(found)


MAX_SHM = 4 << 40        # 4 TiB: more than a node's memory
MAX_GRACE_SECONDS = 86400  # a day: a step that ignores SIGTERM is killed when its grace ends


def _shm(source: YamlFile) -> int:
    try:
        size = parse_bytes(source.data.get("shm", "1Gi"), file=source.path, field="shm")
    except SpecError as exc:
        raise source.error("shm", exc.problem, exc.fix) from None
    if size > MAX_SHM:
        raise source.error("shm", f"{source.data.get('shm')!r} is more than 4Ti, more than a node's memory",
                           "give what the pipeline's data needs in memory, e.g. 8Gi")
    return size


def _grace(source: YamlFile) -> float:
    grace = source.data.get("grace_seconds", 10)
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise source.error("grace_seconds", f"{grace!r} is not a number of seconds from 0 to {MAX_GRACE_SECONDS}",
                           f"set it to a number from 0 to {MAX_GRACE_SECONDS}")
    return float(grace)


def _warm_slots(source: YamlFile) -> int | None:
    value = source.data.get("warm_slots")
    return None if value is None else source.whole_number(value, "warm_slots")


def _checkpoint(source: YamlFile) -> CheckpointSpec:
    checkpoint_data = source.mapping(source.data.get("checkpoint"), "checkpoint", "{ssd: PATH, pv: PATH, major: [names]}")
    source.check_keys(checkpoint_data, CHECKPOINT_KEYS, "checkpoint.")
    return CheckpointSpec(
        ssd=_optional_path(checkpoint_data, "ssd", DEFAULT_SSD, source),
        pv=_optional_path(checkpoint_data, "pv", DEFAULT_PV, source),
        major=source.string_list(checkpoint_data.get("major"), "checkpoint.major", DATA_NAME_RE),
        retention=source.whole_number(checkpoint_data.get("retention", 2), "checkpoint.retention"),
    )


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
