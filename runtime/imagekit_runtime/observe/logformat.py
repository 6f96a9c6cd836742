"""How the runtime's and the steps' log lines look: plain text on stderr, or with IMAGEKIT_LOG_FORMAT=json
one JSON object per line on stdout (time, level, step, message), where cluster log collectors read them."""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.redact import RedactingFilter

RUNTIME_STEP = ""  # the `step` of the runtime's own lines


def wants_json(environ: Mapping[str, str]) -> bool:
    value = environ.get(contract.LOG_FORMAT, "") or "text"
    if value not in ("text", contract.LOG_FORMAT_JSON):
        raise UsageError(f"${contract.LOG_FORMAT}={value!r}: use {contract.LOG_FORMAT_JSON} or text")
    return value == contract.LOG_FORMAT_JSON


def json_line(level: str, step: str, message: str, when: float | None = None) -> str:
    moment = datetime.now(UTC) if when is None else datetime.fromtimestamp(when, UTC)
    return json.dumps({"time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                       "level": level, "step": step, "message": message}, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json_line(record.levelname.lower(), RUNTIME_STEP, message, record.created)


def configure(verbose: bool, as_json: bool) -> None:
    """The runtime's logging: one handler on the root logger."""
    handler = logging.StreamHandler(sys.stdout if as_json else sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def step_line_renderer(step: str, as_json: bool) -> Callable[[str], str]:
    """How an echoed line of a step's output is written (without its newline)."""
    if as_json:
        return lambda line: json_line("info", step, line)
    prefix = f"[{step}]"
    return lambda line: f"{prefix} {line}"
