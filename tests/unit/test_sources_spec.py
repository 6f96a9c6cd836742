"""`sources:` and `sinks:` of pipeline.yaml: parsing, the built-in steps they become, templates, and what is refused."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from imagekit_core.contract import StepKind
from imagekit_core.errors import EXIT_BAD_INPUT, SpecError
from imagekit_core.spec import load_pipeline
from imagekit_core.spec.sources import SinkSpec, SourceSpec, placeholder_values, render_url
from imagekit_runtime.keys import step_keys

COUNT = "name: count\ncommand: [sh, run.sh]\ninputs: [numbers]\noutputs: [total]\n"


def pipeline(tmp_path: Path, sources: object, sinks: object = None, params: dict[str, str] | None = None,
             step: str = COUNT) -> Path:
    (tmp_path / "steps" / "count").mkdir(parents=True, exist_ok=True)
    (tmp_path / "steps" / "count" / "step.yaml").write_text(textwrap.dedent(step))
    config: dict[str, object] = {"name": "nums", "steps": ["steps/count"], "sources": sources}
    if sinks is not None:
        config["sinks"] = sinks
    if params:
        config["params"] = params
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_sources_and_sinks_become_built_in_steps_around_the_packaged_ones(tmp_path: Path) -> None:
    spec = load_pipeline(pipeline(tmp_path, {"numbers": "s3://data/part-{shard:05d}.txt", "extra": "file:///mnt/ref/"},
                                  {"total": "s3://results/{run}/shard-{shard}/total"}))
    assert spec.sources == (SourceSpec("numbers", "s3://data/part-{shard:05d}.txt", "s3"),
                            SourceSpec("extra", "file:///mnt/ref/", "file"))
    assert spec.sinks == (SinkSpec("total", "s3://results/{run}/shard-{shard}/total", "s3"),)
    assert [s.name for s in spec.steps] == ["source.numbers", "source.extra", "count", "sink.total"]
    assert [s.name for s in spec.packaged_steps] == ["count"]
    fetch, sink = spec.step("source.numbers"), spec.step("sink.total")
    assert (fetch.outputs, fetch.inputs, fetch.kind) == (("numbers",), (), StepKind.IO)
    assert (sink.inputs, sink.outputs) == (("total",), ())
    assert fetch.command == ("python3", "-m", "imagekit_runtime.transfer", "fetch", "numbers")
    assert spec.producer_of()["numbers"] == "source.numbers"
    assert spec.topological_order() == ["source.numbers", "source.extra", "count", "sink.total"]
    assert spec.uses_s3 and spec.sources[1].is_prefix and not spec.sources[0].is_prefix


def test_a_pipeline_without_s3_does_not_use_s3(tmp_path: Path) -> None:
    spec = load_pipeline(pipeline(tmp_path, {"numbers": "https://example.org/{shard}.txt"}))
    assert not spec.uses_s3
    assert spec.sinks == ()


def test_one_function_renders_every_placeholder() -> None:
    values = placeholder_values(shard=7, shard_count=16, pipeline="nums", run="r1", params={"DAY": "2024-01-01"})
    url = "s3://b/{pipeline}/{DAY}/{run}/part-{shard:05d}-of-{shard_count}"
    assert render_url(url, values) == "s3://b/nums/2024-01-01/r1/part-00007-of-16"


def test_a_source_key_changes_with_its_identity_and_its_consumer_with_it(tmp_path: Path) -> None:
    spec = load_pipeline(pipeline(tmp_path, {"numbers": "s3://data/{shard}.txt"}))
    first = step_keys(spec, 0, 1, {}, {"source.numbers": "etag-1"})
    same = step_keys(spec, 0, 1, {}, {"source.numbers": "etag-1"})
    changed = step_keys(spec, 0, 1, {}, {"source.numbers": "etag-2"})
    assert first == same
    assert first["source.numbers"] != changed["source.numbers"]
    assert first["count"] != changed["count"]


@pytest.mark.parametrize(("sources", "sinks", "field", "problem"), [
    ({"numbers": "s3://b/{nope}.txt"}, None, "sources.numbers", "unknown placeholder {nope}"),
    ({"numbers": "s3://b/{shard"}, None, "sources.numbers", "bad template"),
    ({"numbers": "s3://b/{DAY:05d}"}, None, "sources.numbers", "bad template"),
    ({"numbers": "s3://b/{}"}, None, "sources.numbers", "unknown placeholder {}"),
    ({"numbers": "ftp://host/x"}, None, "sources.numbers", "unknown scheme"),
    ({"numbers": "/data/x"}, None, "sources.numbers", "has no scheme"),
    ({"numbers": "s3://bucket-only"}, None, "sources.numbers", "names no bucket and key"),
    ({"numbers": "file://relative/x"}, None, "sources.numbers", "not an absolute file URL"),
    ({"numbers": 5}, None, "sources.numbers", "is not a URL"),
    ({"total": "s3://b/x"}, None, "sources.total", "also an output of step 'count'"),
    ({"numbers": "s3://b/x", "TOTAL": "s3://b/y"}, None, "sources.TOTAL", "both become IMAGEKIT_IN_TOTAL"),
    ({"numbers": "s3://b/x", "a-b": "s3://b/y", "a_b": "s3://b/z"}, None, "sources.a_b", "both become"),
    ({"numbers": "s3://b/{shard.real}"}, None, "sources.numbers", "unknown placeholder {shard.real}"),
    ({"numbers": "s3://b/x"}, {"nothing": "s3://b/y"}, "sinks.nothing", "no step or source produces 'nothing'"),
    ({"numbers": "s3://b/x"}, {"total": "https://host/y"}, "sinks.total", "unknown scheme"),
    (["s3://b/x"], None, "sources", "must be a mapping"),
])
def test_bad_sources_and_sinks_get_one_line_naming_file_field_and_fix(
        tmp_path: Path, sources: object, sinks: object, field: str, problem: str) -> None:
    path = pipeline(tmp_path, sources, sinks, params={"DAY": "monday"})
    with pytest.raises(SpecError) as caught:
        load_pipeline(path)
    error = caught.value
    assert error.exit_code == EXIT_BAD_INPUT
    assert (error.field, error.file) == (field, str(path.resolve()))
    assert problem in error.problem
    assert error.fix and "\n" not in str(error)


def test_a_step_consuming_a_missing_source_is_refused_as_before(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="consumed but no step produces it"):
        load_pipeline(pipeline(tmp_path, {"other": "s3://b/x"}))
