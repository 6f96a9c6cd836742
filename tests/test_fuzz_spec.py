"""Whatever pipeline.yaml and step.yaml hold, load_pipeline accepts them or raises a one-line SpecError.

Hypothesis mutates the wordfreq example (a field replaced by a random YAML value, removed, or a random
key added; bytes of the text replaced, dropped or inserted) and feeds it to load_pipeline.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXAMPLES
from imagekit_core.errors import SpecError
from imagekit_core.spec import load_pipeline

WORDFREQ = EXAMPLES / "wordfreq"
STEP_FILES = sorted(path.relative_to(WORDFREQ).as_posix() for path in WORDFREQ.glob("steps/*/step.yaml"))
FILES = ["pipeline.yaml", *STEP_FILES]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
           | st.sampled_from(["", ".", "..", "/", "../x", "/etc", "steps/count", "1Gi", "512m", "-1", "a-b", "A_B",
                              "requirements.txt", "~", "*", "&a", "[", "{", "\0", "\n", "é"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | scalars.filter(lambda v: v is not None), inner,
                                        max_size=4), max_leaves=12)
keys = st.sampled_from(["name", "command", "inputs", "outputs", "requirements", "retries", "env", "steps", "shm",
                        "parallelism", "checkpoint", "shards", "results", "params", "grace_seconds", "base",
                        "paralellism"]) | st.text(max_size=12)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A copy of the example (hypothesis runs many examples in one test, so not a function-scoped tmp_path)."""
    with tempfile.TemporaryDirectory(prefix="imagekit-fuzz-") as root:
        copy = Path(root) / "wordfreq"
        shutil.copytree(WORDFREQ, copy, ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        yield copy


def original(name: str) -> bytes:
    return (WORDFREQ / name).read_bytes()


def assert_only_spec_errors(pipeline_dir: Path) -> None:
    try:
        load_pipeline(pipeline_dir)
    except SpecError as exc:
        message = str(exc)
        assert "\n" not in message and "(fix: " in message, message


def mutate_mapping(data: dict[str, Any], draw: st.DrawFn) -> None:
    """Replace, remove or add one key, at the top level or one level down."""
    target: Any = data
    nested = [key for key, value in data.items() if isinstance(value, dict)]
    if len(nested) > 0 and draw(st.booleans()):  # (`nested and` would type the draw as a list)
        target = data[draw(st.sampled_from(nested))]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if action in ("replace", "remove") and target:
        key = draw(st.sampled_from(sorted(target, key=str)))
        if action == "remove":
            del target[key]
        else:
            target[key] = draw(values)
    else:
        target[draw(keys)] = draw(values)


@st.composite
def mutated_files(draw: st.DrawFn) -> dict[str, bytes]:
    """One or two of the example's files, each with one field mutated."""
    changed: dict[str, bytes] = {}
    for name in draw(st.lists(st.sampled_from(FILES), min_size=1, max_size=2, unique=True)):
        data = yaml.safe_load(original(name))
        mutate_mapping(data, draw)
        changed[name] = yaml.safe_dump(data, allow_unicode=draw(st.booleans())).encode()
    return changed


@st.composite
def mangled_text(draw: st.DrawFn) -> dict[str, bytes]:
    """One of the example's files with a few bytes replaced, dropped or inserted."""
    name = draw(st.sampled_from(FILES))
    text = bytearray(original(name))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["replace", "drop", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=4) | st.sampled_from([b":", b"-", b" ", b"\n", b"[", b"{", b"\t",
                                                                          b"&a", b"*a", b"!!", b"\xff", b"\xe9"]))
        if action == "drop":
            del text[at:at + len(chunk)]
        elif action == "replace":
            text[at:at + len(chunk)] = chunk
        else:
            text[at:at] = chunk
    return {name: bytes(text)}


def load_with(workdir: Path, files: dict[str, bytes]) -> None:
    try:
        for name, text in files.items():
            (workdir / name).write_bytes(text)
        assert_only_spec_errors(workdir)
    finally:
        for name in files:
            (workdir / name).write_bytes(original(name))


@FUZZ
@given(files=mutated_files())
def test_mutated_fields_give_spec_errors_only(workdir: Path, files: dict[str, bytes]) -> None:
    load_with(workdir, files)


@FUZZ
@given(files=mangled_text())
def test_mangled_yaml_text_gives_spec_errors_only(workdir: Path, files: dict[str, bytes]) -> None:
    load_with(workdir, files)


@FUZZ
@given(document=values)
def test_any_yaml_document_as_pipeline_gives_spec_errors_only(workdir: Path, document: Any) -> None:
    load_with(workdir, {"pipeline.yaml": yaml.safe_dump(document).encode()})


def test_the_example_itself_loads(workdir: Path) -> None:
    """The mutations start from a valid pipeline; were it refused, the properties above would prove little."""
    assert load_pipeline(workdir).name == "wordfreq"
