"""What every verb shares: error reporting with the exit codes of docs/contract.md, JSON output, logging."""
from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

import typer
from rich.console import Console

from imagekit_runtime.errors import ImagekitError

F = TypeVar("F", bound=Callable[..., Any])

# Progress and logs go to stderr; stdout carries only machine-readable results.
stderr = Console(stderr=True, soft_wrap=True)


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


class ConsoleHandler(logging.Handler):
    """Log records through the rich console (above a live progress display), one line each, never wrapped."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stderr.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[ConsoleHandler()])


def exits_on_error(func: F) -> F:
    """Turn an ImagekitError into one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImagekitError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
