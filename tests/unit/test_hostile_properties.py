"""Property-based tries of hostile input where the space is wide: URL templates, step and data names, YAML
shapes. Each is accepted within the documented bounds or refused with one SpecError line; nothing crashes,
nothing grows without bound."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagekit_core.errors import SpecError
from imagekit_core.spec import load_pipeline
from imagekit_core.spec.sources import MAX_FORMAT_WIDTH, render_url, template_problem
from imagekit_core.spec.types import DATA_NAME_RE, NAME_RE
from imagekit_core.spec.yaml_reader import parse_yaml

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

fields = st.sampled_from(["shard", "shard_count", "run", "pipeline", "REGION", "nope", ""])
specs = st.one_of(st.just(""), st.from_regex(r"[<>^=]?[+-]?0?\d{0,12}(\.\d{0,4})?[dsxXob%]?", fullmatch=True),
                  st.text(max_size=8))
pieces = st.one_of(st.text(alphabet="abc/-_.:{}", max_size=6),
                   st.builds(lambda f, s, conv: "{" + f + conv + (":" + s if s else "") + "}", fields, specs,
                             st.sampled_from(["", "!r", "!s", "!x"])))
templates = st.lists(pieces, max_size=6).map("".join)


@PROPERTY
@given(template=templates, shard=st.integers(0, 10**6))
def test_a_template_is_refused_or_renders_a_bounded_url(template: str, shard: int) -> None:
    params = {"REGION": "eu"}
    problem = template_problem(template, params)
    if problem is not None:
        assert all(isinstance(part, str) and "\n" not in part for part in problem)
        return
    url = render_url(template, {**params, "shard": shard, "shard_count": 10**6, "pipeline": "p", "run": "r"})
    assert len(url) <= len(template) + template.count("{") * (MAX_FORMAT_WIDTH + 32)


def _pipeline(tmp_path: Path, step_name: str, data_name: str) -> Path:
    step = tmp_path / "steps" / "one"
    step.mkdir(parents=True, exist_ok=True)
    (step / "step.yaml").write_text(yaml.safe_dump({"name": step_name, "command": ["true"], "outputs": [data_name]}))
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump({"name": "p", "steps": ["steps/one"],
                                                            "results": [data_name]}))
    return tmp_path / "pipeline.yaml"


names = st.one_of(st.text(max_size=300), st.from_regex(r"[a-z0-9-]{1,80}", fullmatch=True),
                  st.from_regex(r"[A-Za-z0-9_-]{1,120}", fullmatch=True))


@PROPERTY
@given(step_name=names, data_name=names)
def test_a_name_is_refused_or_fits_files_and_kubernetes(tmp_path: Path, step_name: str, data_name: str) -> None:
    try:
        spec = load_pipeline(_pipeline(tmp_path, step_name, data_name))
    except SpecError as exc:
        assert "\n" not in str(exc)
        return
    assert NAME_RE.match(spec.steps[0].name) and len(spec.steps[0].name) <= 63
    assert DATA_NAME_RE.match(data_name) and len(data_name.encode()) <= 100  # a file name, with room to spare


@st.composite
def alias_documents(draw: st.DrawFn) -> str:
    """Anchors that double at each level (a billion laughs), and nesting of a random depth."""
    levels = draw(st.integers(1, 40))
    lines = ["a0: &a0 [x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    depth = draw(st.integers(0, 400))
    lines.append("deep: " + "[" * depth + "x" + "]" * depth)
    return "\n".join(lines) + "\n"


@PROPERTY
@given(text=alias_documents())
def test_yaml_bombs_and_deep_nesting_are_refused_in_one_line(tmp_path: Path, text: str) -> None:
    try:
        parse_yaml(text, tmp_path / "pipeline.yaml")
    except SpecError as exc:
        assert "\n" not in str(exc) and "pipeline.yaml" in str(exc)


def test_the_bounds_themselves_are_what_the_properties_lean_on() -> None:
    with pytest.raises(SpecError):
        parse_yaml("a0: &a0 [x, x]\n" + "\n".join(f"a{i}: &a{i} [*a{i-1}, *a{i-1}]" for i in range(1, 120)),
                   Path("pipeline.yaml"))
    assert template_problem("{shard:>100}", {}) is not None
    assert template_problem("{shard:05d}", {}) is None
    quoted = template_problem("{shard:\n0}", {})  # Python's own message quotes the spec, line break included
    assert quoted is not None and "\n" not in quoted[0] and quoted[0].startswith("bad template (")
