"""The bad-input tests' shared pieces: a good two-step pipeline and a one-place change to it (Bad), written
to disk; the CLI's one entry called in-process; the checks that a refusal is one line naming what it must."""
from __future__ import annotations

import os
from dataclasses import dataclass
from dataclasses import field as default
from pathlib import Path
from typing import Any

import pytest

from imagekit.cli.main import main

PIPELINE = "name: good\nsteps: [steps/make, steps/use]\nshm: 64Mi\nresults: [b]\n"
MAKE = "name: make\ncommand: [sh, run.sh]\noutputs: [a]\n"
USE = "name: use\ncommand: [sh, run.sh]\ninputs: [a]\noutputs: [b]\n"


@dataclass(frozen=True)
class Bad:
    """A pipeline that differs from the good one in one place, and what the one line must say."""

    pipeline: str | bytes = PIPELINE
    make: str | bytes = MAKE
    use: str | bytes | None = USE  # None: no step.yaml
    file: str = "pipeline.yaml"  # the file the line must name (its tail)
    field: str = ""  # the field the line must name
    says: tuple[str, ...] = ()  # more words the line must hold
    line: int | None = None  # the YAML line number the line must give
    files: dict[str, str] = default(default_factory=dict)  # extra files, relative to the pipeline's parent


def pipeline_with(extra: str, **expected: Any) -> Bad:
    """The good pipeline.yaml plus the lines extra."""
    return Bad(pipeline=PIPELINE + extra, **expected)


# Two cases of the table that the process-boundary tests (test_bad_environment.py) run as a shell would.
NOT_UTF8 = Bad(pipeline=PIPELINE.encode() + b"description: caf\xe9\n", says=("not UTF-8",), line=5)
COMMAND_MISSING = Bad(use="name: use\ninputs: [a]\noutputs: [b]\n", file="steps/use/step.yaml", field="command",
                      says=("[python3, main.py]",))


def write_case(root: Path, case: Bad) -> Path:
    """The case's pipeline under root/p (its neighbours, such as root/outside, beside it); its pipeline.yaml."""
    directory = root / "p"
    for relative, text in (("pipeline.yaml", case.pipeline), ("steps/make/step.yaml", case.make),
                           ("steps/use/step.yaml", case.use)):
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is not None:
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
    for relative, text in case.files.items():
        if relative.startswith("@"):
            (directory / "steps" / relative[1:]).symlink_to(root / text, target_is_directory=True)
            continue
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory / "pipeline.yaml"


def assert_one_line(message: str, case: Bad) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert case.file in message, message
    assert f": {case.field}: " in message or not case.field, message
    assert "(fix: " in message, message
    for words in case.says:
        assert words in message, message
    if case.line is not None:
        assert f", line {case.line}: " in message, message


def cli(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> tuple[int, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.err


def assert_refused(code: int, err: str, expected: int, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == expected, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], err


def good(root: Path) -> Path:
    return write_case(root, Bad())
