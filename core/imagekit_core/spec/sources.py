"""`sources:` and `sinks:` of pipeline.yaml: data pulled into shm before its consumers run, and data
published once committed (docs/sources.md).

Each source and each sink becomes a built-in step of the pipeline (a `StepSpec` whose `transfer` is set):
a source step produces the data item of its name, so steps consume it exactly like another step's output;
a sink step consumes its data item. Both run as `python3 -m imagekit_runtime.transfer`, under supervisord,
committed, checkpointed and resumed like any step; the build packages no code for them.

`render_url` is the one place a URL template is filled in.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagekit_core.contract import env_name, input_var
from imagekit_core.errors import one_line
from imagekit_core.spec.yaml_reader import YamlFile

SOURCE_SCHEMES = ("s3", "file", "http", "https")
SINK_SCHEMES = ("s3", "file")
PLACEHOLDERS = ("shard", "shard_count", "pipeline", "run")  # besides the pipeline's params
SOURCE_STEP_PREFIX = "source."  # a source's built-in step: source.<data>
SINK_STEP_PREFIX = "sink."      # a sink's built-in step: sink.<data>
TRANSFER_MODULE = "imagekit_runtime.transfer"
SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]*)://")
_SAMPLE: dict[str, Any] = {"shard": 0, "shard_count": 1, "pipeline": "p", "run": "r"}


@dataclass(frozen=True)
class SourceSpec:
    """`sources: {name: url}`: the data item `name`, fetched from the url (templated) into shm.
    A url ending in `/` (s3 prefix, file directory) gives a directory, anything else a file."""

    name: str
    url: str     # the template, as written
    scheme: str  # s3, file, http or https

    @property
    def step_name(self) -> str:
        return SOURCE_STEP_PREFIX + self.name

    @property
    def is_prefix(self) -> bool:
        return self.url.endswith("/")


@dataclass(frozen=True)
class SinkSpec:
    """`sinks: {data: url}`: the committed data item `data`, uploaded to the url (templated)."""

    name: str    # the data item it publishes
    url: str
    scheme: str  # s3 or file

    @property
    def step_name(self) -> str:
        return SINK_STEP_PREFIX + self.name


Transfer = SourceSpec | SinkSpec


def placeholder_values(*, shard: int, shard_count: int, pipeline: str, run: str,
                       params: Mapping[str, str]) -> dict[str, Any]:
    """What a template may name: the params, then the built-in placeholders (which win)."""
    return {**params, "shard": shard, "shard_count": shard_count, "pipeline": pipeline, "run": run}


def placeholders_in(template: str) -> set[str]:
    """The names a (valid) template fills in: `{shard:05d}/{run}` → {"shard", "run"}."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render_url(template: str, values: Mapping[str, Any]) -> str:
    """The url of a source or sink for one shard and run: `{shard:05d}`, `{run}`, `{PARAM}` filled in."""
    return string.Formatter().vformat(template, (), dict(values))


MAX_FORMAT_WIDTH = 64  # {shard:>N}: N at most this (a huge width would build a string of that size)


def template_problem(template: str, params: Mapping[str, str]) -> tuple[str, str] | None:
    """(problem, fix) when the template cannot be rendered with these params; None when it can."""
    try:
        fields = [(name, spec) for _, name, spec, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return (f"bad template ({one_line(str(exc))})",
                "write placeholders as {shard}, {shard:05d}; a literal brace as {{ or }}")
    known = ", ".join(f"{{{name}}}" for name in (*PLACEHOLDERS, *sorted(params)))
    for name, spec in fields:
        if name == "" or name not in _SAMPLE and name not in params:
            return f"unknown placeholder {{{name}}}", f"use one of {known}"
        widths = [int(digits) for digits in re.findall(r"\d+", spec or "")]
        if any(width > MAX_FORMAT_WIDTH for width in widths):
            return (f"format spec {{{name}:{spec}}} asks for more than {MAX_FORMAT_WIDTH} characters",
                    "a width such as {shard:05d}")
    sample = {**params, **_SAMPLE}
    try:
        render_url(template, sample)
    except (ValueError, TypeError) as exc:  # Python's message quotes the spec, line breaks and all
        return (f"bad template ({one_line(str(exc))})",
                "a format spec such as {shard:05d} applies to {shard} and {shard_count} only")
    return None


def parse_transfers(source: YamlFile, params: Mapping[str, str], outputs: Mapping[str, str],
                    name_re: re.Pattern[str]) -> tuple[tuple[SourceSpec, ...], tuple[SinkSpec, ...]]:
    """`sources` and `sinks` of a pipeline file. outputs: data item -> the step that produces it;
    name_re: what a data name may be."""
    sources = tuple(SourceSpec(name, url, scheme) for name, url, scheme
                    in _entries(source, "sources", params, SOURCE_SCHEMES, name_re))
    by_env_name = {env_name(data): data for data in outputs}
    for spec in sources:
        if spec.name in outputs:
            raise source.error(f"sources.{spec.name}", f"data {spec.name!r} is also an output of step "
                               f"{outputs[spec.name]!r}", "rename the source or the output")
        other = by_env_name.setdefault(env_name(spec.name), spec.name)
        if other != spec.name:
            raise source.error(f"sources.{spec.name}", f"data {spec.name!r} and {other!r} both become "
                               f"{input_var(spec.name)}", "rename one of them")
    produced = {*outputs, *(spec.name for spec in sources)}
    sinks = tuple(SinkSpec(name, url, scheme) for name, url, scheme
                  in _entries(source, "sinks", params, SINK_SCHEMES, name_re))
    for sink in sinks:
        if sink.name not in produced:
            raise source.error(f"sinks.{sink.name}", f"no step or source produces {sink.name!r}",
                               "name an output of one of the steps, or a source")
    return sources, sinks


def _entries(source: YamlFile, key: str, params: Mapping[str, str], schemes: tuple[str, ...],
             name_re: re.Pattern[str]) -> list[tuple[str, str, str]]:
    """(name, template, scheme) of each entry of a `sources`/`sinks` mapping, each checked."""
    example = "{corpus: s3://bucket/part-{shard:05d}.txt}"
    entries = []
    for name, url in source.mapping(source.data.get(key), key, example).items():
        field = f"{key}.{name}"
        if not isinstance(name, str) or not name_re.match(name):
            raise source.error(key, f"bad data name {name!r}", "use letters, digits, '-' and '_' only")
        if not isinstance(url, str) or not url:
            raise source.error(field, f"{url!r} is not a URL", f"write `{name}: s3://bucket/key-{{shard}}`")
        match = SCHEME_RE.match(url)
        scheme = match.group(1) if match else ""
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            raise source.error(field, f"unknown scheme in {url!r}" if scheme else f"{url!r} has no scheme",
                               f"write a URL starting with one of {allowed}")
        if scheme == "s3" and not re.match(r"^s3://[^/{}]+/", url):
            raise source.error(field, f"{url!r} names no bucket and key", "write s3://BUCKET/KEY (or PREFIX/)")
        if scheme == "file" and not url.startswith("file:///"):
            raise source.error(field, f"{url!r} is not an absolute file URL", "write file:///absolute/path")
        problem = template_problem(url, params)
        if problem is not None:
            raise source.error(field, problem[0], problem[1])
        entries.append((name, url, scheme))
    return entries
