"""What the benchmark's steps and the runtime wrote down: a step's BENCH line (JSON after the marker) and
the times of a run's journal transitions."""
from __future__ import annotations

import json
from pathlib import Path

from imagekit_runtime.observe import journal as run_journal
from paradigms.engine import BenchError


def parse_bench_line(text: str) -> dict:
    for line in text.splitlines():
        if "BENCH " in line:
            return json.loads(line.split("BENCH ", 1)[1])
    raise BenchError(f"no BENCH line in: {text[-500:]!r}")


def read_journal(path: Path) -> list[dict]:
    return list(run_journal.read_journal(path))


def transition_ts(entries: list[dict], step: str, to: str) -> float:
    at = run_journal.transition_time(entries, step, to)
    if at is None:
        raise BenchError(f"journal has no transition of {step} to {to}")
    return at
