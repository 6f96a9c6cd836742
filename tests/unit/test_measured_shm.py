"""deploy render --measured-run: a run's peak shm (in pages) against the pipeline's `shm`, naming the largest item."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagekit_core.contract import Event
from imagekit_core.errors import UsageError
from imagekit_deploy.measured import measured_shm, shm_warning

from .graphs import DIAMOND, load_graph

MIB = 1024 * 1024


def write_journal(path: Path, *, peak: int | None, outputs: dict[str, dict[str, int]]) -> Path:
    entries = [{"ts": 1.0, "run": "r1", "event": Event.RUN_START.value, "key": "k"}]
    for step, sizes in outputs.items():
        entries.append({"ts": 2.0, "run": "r1", "event": Event.TRANSITION.value, "step": step, "from": "committing",
                        "to": "committed", "bytes_out": sum(sizes.values()), "outputs": sizes})
    if peak is not None:
        entries.append({"ts": 3.0, "run": "r1", "event": Event.RUN_END.value, "status": "completed", "exit_code": 0,
                        "peak_shm_bytes": peak})
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


def test_a_run_past_shm_is_a_warning_naming_the_largest_item(tmp_path: Path) -> None:
    spec = load_graph(tmp_path / "pipeline", DIAMOND, shm="64Mi")
    journal = write_journal(tmp_path / "journal.jsonl", peak=150 * MIB,
                            outputs={"gen": {"numbers": 100 * MIB}, "square": {"squares": 50 * MIB}})
    measured = measured_shm(journal)
    assert (measured.peak, measured.largest, measured.largest_bytes) == (150 * MIB, "gen/numbers", 100 * MIB)
    warning = shm_warning(spec, measured)
    assert warning is not None
    assert "took 150.0 MiB of shm (in pages), more than `shm: 64Mi`" in warning
    assert "the largest item is gen/numbers (100.0 MiB)" in warning and "declare `shm: 150Mi` or more" in warning


def test_a_run_that_fits_gives_no_warning(tmp_path: Path) -> None:
    spec = load_graph(tmp_path / "pipeline", DIAMOND, shm="256Mi")
    journal = write_journal(tmp_path / "journal.jsonl", peak=100 * MIB, outputs={"gen": {"numbers": 100 * MIB}})
    assert shm_warning(spec, measured_shm(journal)) is None


def test_a_journal_without_a_finished_run_is_a_usage_error(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "journal.jsonl", peak=None, outputs={"gen": {"numbers": MIB}})
    with pytest.raises(UsageError, match="no finished run in it"):
        measured_shm(journal)
    with pytest.raises(UsageError, match="no such file"):
        measured_shm(tmp_path / "absent.jsonl")
