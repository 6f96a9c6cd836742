"""Typed errors, each carrying its exit code; docs/contract.md lists them for users."""
from __future__ import annotations

import datetime
import os
import tempfile
import traceback
from pathlib import Path

from imagekit_core.redact import redact

EXIT_OK = 0
EXIT_FAILURE = 1  # a pipeline or step failed
EXIT_BAD_INPUT = 2  # bad input or usage
EXIT_ENVIRONMENT = 3  # engine, registry or tool missing
EXIT_INTERNAL = 4  # a bug in imagekit: one line on stderr, the full trace in a file
EXIT_TERMINATED = 143  # stopped by SIGTERM


class ImagekitError(Exception):
    exit_code = EXIT_FAILURE


def one_line(text: str) -> str:
    """text with its line breaks turned into spaces: an error is one line whatever it quotes."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip()) or text.strip()


class SpecError(ImagekitError):
    """Bad pipeline or step input. The message is one line: file (and line), field, problem, fix."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, file: Path | str, field: str, problem: str, fix: str, *, line: int | None = None) -> None:
        self.file = str(file)
        self.field = field
        self.problem = problem
        self.fix = fix
        self.line = line
        where = f"{self.file}, line {line}" if line is not None else self.file
        super().__init__(f"{where}: {field}: {problem} (fix: {fix})")


class UsageError(ImagekitError):
    exit_code = EXIT_BAD_INPUT


class EnvironmentMissing(ImagekitError):
    """Something outside imagekit is missing: an engine, a registry, a tool."""

    exit_code = EXIT_ENVIRONMENT


class PipelineFailed(ImagekitError):
    exit_code = EXIT_FAILURE


class CommandFailed(ImagekitError):
    """A subprocess run through `imagekit_core.proc.run` exited non-zero."""

    exit_code = EXIT_FAILURE

    def __init__(self, argv: list[str], returncode: int, output: str) -> None:
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = output.strip().splitlines()[-1:] if output.strip() else []
        detail = f": {tail[0]}" if tail else ""
        super().__init__(f"`{' '.join(argv[:3])}{' …' if len(argv) > 3 else ''}` exited {returncode}{detail}")


def write_crash_report(exc: BaseException, argv: list[str], program: str = "imagekit") -> Path:
    """The full trace of an unexpected error (a bug) in a file under $TMPDIR; its path, for the one line a user sees."""
    descriptor, name = tempfile.mkstemp(prefix=f"{program}-crash-", suffix=".txt")
    with os.fdopen(descriptor, "w") as report:
        report.write(redact(f"{program} {' '.join(argv)}\n{datetime.datetime.now().isoformat()}\n\n"))
        report.write(redact("".join(traceback.format_exception(exc))))
    return Path(name)
