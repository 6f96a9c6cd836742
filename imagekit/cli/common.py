"""What every verb shares: the stderr console, error lines with the exit codes of docs/contract.md, JSON output,
logging."""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.text import Text

from imagekit_core.errors import one_line
from imagekit_core.redact import RedactingFilter, redact

# Progress, logs and hints go to stderr; stdout carries the results (tables, reports, JSON, references).
# Everything printed is
# user text (paths, names, fix hints such as `[python3, main.py]`), so the console prints it literally:
# no markup, no emoji codes, no highlighting, no wrapping.
stderr = Console(stderr=True, soft_wrap=True, markup=False, emoji=False, highlight=False)


class OutputFormat(StrEnum):
    """What -o/--output means in every verb: the format of the result on stdout."""

    text = "text"
    json = "json"


class ManifestFormat(StrEnum):
    """-o/--output where manifests are printed: text and yaml both give a YAML stream."""

    text = "text"
    yaml = "yaml"
    json = "json"


@dataclass
class CliState:
    """Per invocation: what the top-level options asked for (the click context's obj)."""

    verbose: bool = False
    argv: list[str] = field(default_factory=list)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def emit_text(text: str) -> None:
    """A result on stdout (a table, a report, a reference), as it is, ending in one newline."""
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


def print_error(message: str) -> None:
    """`error: MESSAGE` on stderr, on one line, MESSAGE printed literally."""
    stderr.print(Text.assemble(("error:", "bold red"), " ", one_line(redact(message))))


class ConsoleHandler(logging.Handler):
    """Log records through the rich console (above a live progress display), one line each, never wrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stderr.print(self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool) -> None:
    handler = ConsoleHandler()
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)
