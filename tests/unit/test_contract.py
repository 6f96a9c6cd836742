"""The runtime contract, in process: env naming, the journal and its one reader, the documented names."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from imagekit_core import contract
from imagekit_runtime import step
from imagekit_runtime.layout import RunLayout
from imagekit_runtime.observe.journal import (
    Journal,
    newest_run,
    parse_text,
    read_journal,
    run_ids,
    runs_in,
    steps_started,
    transition_time,
)
from imagekit_runtime.states import TRANSITIONS, StepState

REPO = Path(__file__).resolve().parents[2]
CONTRACT_DOC = REPO / "docs" / "contract.md"


@pytest.mark.parametrize(("data", "variable_in", "variable_out"), [
    ("corpus", "IMAGEKIT_IN_CORPUS", "IMAGEKIT_OUT_CORPUS"),
    ("env-dump", "IMAGEKIT_IN_ENV_DUMP", "IMAGEKIT_OUT_ENV_DUMP"),
    ("Mixed_case-2", "IMAGEKIT_IN_MIXED_CASE_2", "IMAGEKIT_OUT_MIXED_CASE_2"),
])
def test_data_names_become_upper_case_variables_with_underscores(data: str, variable_in: str,
                                                                 variable_out: str) -> None:
    assert contract.input_var(data) == variable_in
    assert contract.output_var(data) == variable_out


def test_the_step_helper_reads_the_contract_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMAGEKIT_IN_WORD_LIST", str(tmp_path / "in"))
    monkeypatch.setenv("IMAGEKIT_OUT_COUNTS", str(tmp_path / "out"))
    monkeypatch.setenv("IMAGEKIT_SHARD_INDEX", "3")
    monkeypatch.setenv("IMAGEKIT_SHARD_COUNT", "5")
    assert step.input_path("word-list") == tmp_path / "in"
    assert step.output_path("counts") == tmp_path / "out"
    assert (step.shard_index(), step.shard_count()) == (3, 5)
    with pytest.raises(KeyError, match=r"IMAGEKIT_IN_MISSING.*inputs"):
        step.input_path("missing")


@pytest.mark.parametrize(("value", "on"), [(None, False), ("", False), ("0", False), ("false", False),
                                          ("1", True), ("yes", True)])
def test_hold_when_complete_is_on_unless_empty_zero_or_false(value: str | None, on: bool) -> None:
    assert contract.is_hold_requested(value) is on


def test_every_variable_event_level_and_file_name_is_documented() -> None:
    text = CONTRACT_DOC.read_text()
    variables = [value for name, value in vars(contract).items()
                 if name.isupper() and isinstance(value, str) and value.startswith("IMAGEKIT_")]
    assert len(variables) >= 14
    missing = [v for v in variables if v.rstrip("_") not in text]
    missing += [f"event {e.value}" for e in contract.Event if f"`{e.value}`" not in text]
    missing += [f"status {s.value}" for s in contract.RunStatus if f"`{s.value}`" not in text]
    missing += [f"level {level}" for level in contract.FAILURE_LEVELS if f"`{level}`" not in text]
    files = (contract.JOURNAL_FILE, contract.COMMIT_RECORD, contract.COMPLETION_MARKER, contract.CHECKPOINT_MANIFEST,
             contract.QUARANTINE_DIR, contract.QUARANTINE_REASON_SUFFIX, contract.TEMPORARY_PREFIX)
    missing += [f"file {name}" for name in files if name not in text]
    missing += [f"path {path}" for path in (contract.IMAGE_RUNTIME_DIR, contract.IMAGE_DEPS_ROOT,
                                            contract.IMAGE_PIPELINE_FILE, contract.DEFAULT_SHM_DIR,
                                            contract.DEFAULT_SSD, contract.DEFAULT_PV, str(contract.RUNTIME_UID))
                if path not in text]
    assert not missing, f"docs/contract.md does not mention: {missing}"


def test_failure_levels_run_from_the_least_to_the_most_lost() -> None:
    assert contract.FAILURE_LEVELS == ("process", "container", "pod", "node")
    assert set(contract.SURVIVES) == set(contract.FailureLevel)
    assert [("shm" in contract.SURVIVES[level], "SSD" in contract.SURVIVES[level])
            for level in contract.FailureLevel] == [(True, True), (True, True), (False, True), (False, False)]


def test_the_run_layout_uses_the_contract_file_names(tmp_path: Path) -> None:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "run", results_dir=tmp_path / "results",
                       ssd_dir=None, pv_dir=None)
    assert layout.journal == tmp_path / "run" / contract.JOURNAL_FILE
    assert layout.completion_marker == tmp_path / "results" / contract.COMPLETION_MARKER
    assert layout.commit_record("a") == tmp_path / "shm" / contract.COMMITTED_DIR / "a" / contract.COMMIT_RECORD
    assert layout.output_path("a", "x") == tmp_path / "shm" / contract.STAGING_DIR / "a" / "x"
    assert layout.supervisor_log == tmp_path / "run" / contract.SUPERVISOR_LOG


def test_no_state_is_unreachable_or_without_transitions() -> None:
    assert set(TRANSITIONS) == set(StepState)
    reachable = {StepState.WAITING}
    for targets in TRANSITIONS.values():
        reachable |= targets
    assert reachable == set(StepState)


# ------------------------------------------------------------------ the journal
def write_two_runs(path: Path) -> None:
    first = Journal(path, "run-1")
    first.record(contract.Event.RUN_START, pipeline="p", shard=0, shard_count=1, key="k1")
    first.record(contract.Event.PLAN, to_run=["a", "b"], reused=[], restore={}, available={})
    first.record(contract.Event.TRANSITION, step="a", **{"from": "waiting", "to": "ready"})
    first.record(contract.Event.TRANSITION, step="a", **{"from": "ready", "to": "running"}, attempt=1)
    first.record(contract.Event.CHECKPOINTED, step="a", data="x", tier="ssd", path="/ssd/x")
    first.close()
    second = Journal(path, "run-2")
    second.record(contract.Event.RUN_START, pipeline="p", shard=0, shard_count=1, key="k2")
    second.record(contract.Event.PLAN, to_run=["b"], reused=["a"], restore={"a/x": "ssd"}, available={})
    second.record(contract.Event.TRANSITION, step="a", **{"from": "waiting", "to": "reused"})
    second.record(contract.Event.TRANSITION, step="b", **{"from": "ready", "to": "running"}, attempt=1)
    second.record(contract.Event.TRANSITION, step="b", **{"from": "running", "to": "backoff"}, exit_code=1)
    second.record(contract.Event.TRANSITION, step="b", **{"from": "ready", "to": "running"}, attempt=2)
    second.close()


def test_a_journal_file_appears_with_its_first_event(tmp_path: Path) -> None:
    path = tmp_path / "run" / contract.JOURNAL_FILE
    journal = Journal(path, "r")
    assert not path.exists()
    journal.record(contract.Event.RUN_START, pipeline="p")
    journal.close()
    (entry,) = read_journal(path)
    assert (entry["run"], entry["event"], entry["pipeline"]) == ("r", "run-start", "p")


def test_the_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / contract.JOURNAL_FILE
    write_two_runs(path)
    whole = len(path.read_text().splitlines())
    with open(path, "a") as journal_file:
        journal_file.write('{"ts": 1.0, "run": "run-2", "event": "transition", "step": "b", "fr')  # killed mid-line
    entries = list(read_journal(path))
    assert len(entries) == whole
    assert parse_text(path.read_text()) == entries
    assert runs_in(path) == ["run-1", "run-2"]
    assert steps_started(path, "run-2") == ["b"]
    assert [e["event"] for e in read_journal(path, "run-1")] == [
        "run-start", "plan", "transition", "transition", "checkpointed"]


def test_the_reader_skips_lines_that_are_not_events() -> None:
    text = "\n".join(['[1, 2]', '"text"', '{"no": "event"}', "", json.dumps({"event": "run-start", "run": "r"})])
    assert parse_text(text) == [{"event": "run-start", "run": "r"}]
    assert run_ids(parse_text(text)) == ["r"]


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    assert list(read_journal(tmp_path / "none.jsonl")) == []
    assert newest_run([]).runs == 0


def test_newest_run_is_what_the_pod_status_shows(tmp_path: Path) -> None:
    path = tmp_path / contract.JOURNAL_FILE
    write_two_runs(path)
    view = newest_run(parse_text(path.read_text()))
    assert (view.runs, view.key, view.status) == (2, "k2", None)
    assert view.steps == {"b": "running", "a": "reused"}
    assert view.started == ["b"]
    assert (view.reused, view.restored) == (["a"], {"a/x": "ssd"})
    assert view.checkpointed == ["a/x@ssd"]  # over every run


def test_transition_time_is_the_first_entry_into_a_state(tmp_path: Path) -> None:
    path = tmp_path / contract.JOURNAL_FILE
    write_two_runs(path)
    entries = list(read_journal(path, "run-2"))
    first_running = next(e["ts"] for e in entries if e.get("to") == "running")
    assert transition_time(entries, "b", "running") == first_running
    assert transition_time(entries, "b", "committed") is None


def test_the_pod_emulator_reads_the_journal_with_the_same_reader(tmp_path: Path) -> None:
    status = pytest.importorskip("imagekit_deploy.emulator.status")
    path = tmp_path / contract.JOURNAL_FILE
    write_two_runs(path)
    text = path.read_text() + '{"torn'
    assert status.parse_journal(text) == newest_run(parse_text(text))


def test_journal_events_are_spelled_only_in_the_contract() -> None:
    spelled = re.compile(r"""["'](run-start|run-end|checkpointed|freed)["']""")
    offenders = [str(path.relative_to(REPO)) for folder in ("runtime", "deploy", "imagekit", "bench")
                 for path in (REPO / folder).rglob("*.py")
                 if path.name != "contract.py" and spelled.search(path.read_text())]
    assert not offenders


def test_the_completion_marker_has_one_reader_that_never_raises(tmp_path: Path) -> None:
    from imagekit_runtime.data.results import read_completion, write_completion

    marker = tmp_path / contract.COMPLETION_MARKER
    assert read_completion(marker) is None
    write_completion(marker, {"key": "k", "shard": 0})
    assert read_completion(marker) == {"key": "k", "shard": 0}
    for torn in ('{"key": "k"', "[1, 2]", ""):
        marker.write_text(torn)
        assert read_completion(marker) is None
