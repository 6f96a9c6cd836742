"""What a run decides from what an earlier one left (shm, checkpoints, the journal, the completion marker),
and the seals of committed data, in process with the fake step host. No test here starts a process."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from imagekit_core.contract import RESULT_RECORDS_DIR, RunStatus
from imagekit_core.errors import EXIT_ENVIRONMENT, EXIT_FAILURE, EXIT_OK

from .conductor_fakes import Harness, Outcome, StepCall, write_pipeline, writes

CHAIN = {"a": {"outputs": ["ad"]}, "b": {"inputs": ["ad"], "outputs": ["bd"]}, "c": {"inputs": ["bd"], "outputs": ["cd"]}}


def chain(tmp_path: Path, **settings: object) -> Harness:
    spec = write_pipeline(tmp_path / "p", CHAIN, results=["cd"], **settings)
    return Harness(tmp_path / "run", spec, {"a": writes("ad"), "b": writes("bd"), "c": writes("cd")})


def test_a_complete_shard_runs_nothing_the_second_time(tmp_path: Path) -> None:
    run = chain(tmp_path)
    assert run.run().exit_code == EXIT_OK
    again = run.run()
    assert (again.exit_code, again.status) == (EXIT_OK, RunStatus.ALREADY_COMPLETE)
    assert run.host is not None and run.host.spawned() == []


def test_force_runs_every_step_again(tmp_path: Path) -> None:
    run = chain(tmp_path)
    assert run.run().exit_code == EXIT_OK
    assert run.run(force=True).exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["a", "b", "c"]


def test_after_a_failure_the_committed_steps_are_reused_and_the_failed_one_runs_again(tmp_path: Path) -> None:
    run = chain(tmp_path)
    run.behaviours["c"] = writes(code=1)
    assert run.run().exit_code == EXIT_FAILURE
    run.behaviours["c"] = writes("cd")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["c"]
    plan = run.last_plan()
    assert plan["reused"] == ["a", "b"] and plan["to_run"] == ["c"]
    assert plan["inputs"] == {"c": {"bd": "shm"}}


def test_a_changed_step_and_what_follows_it_run_again(tmp_path: Path) -> None:
    run = chain(tmp_path)
    run.behaviours["c"] = writes(code=1)
    assert run.run().exit_code == EXIT_FAILURE
    step_yaml = tmp_path / "p" / "steps" / "b" / "step.yaml"
    step_yaml.write_text(step_yaml.read_text() + "env:\n  EDITION: '2'\n")
    run.spec = write_pipeline(tmp_path / "p", {**CHAIN, "b": {**CHAIN["b"], "env": {"EDITION": "2"}}},
                              results=["cd"])
    run.behaviours["c"] = writes("cd")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["b", "c"]
    assert run.last_plan()["inputs"]["b"] == {"ad": "ssd"}  # freed from shm once b had read it


def test_data_lost_from_shm_comes_back_from_the_ssd_checkpoint(tmp_path: Path) -> None:
    run = chain(tmp_path)
    run.behaviours["c"] = writes(code=1)
    assert run.run().exit_code == EXIT_FAILURE
    shutil.rmtree(tmp_path / "run" / "shm")  # the pod was deleted: shm is gone, the SSD stays
    run.behaviours["c"] = writes("cd")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["c"]
    plan = run.last_plan()
    assert plan["restore"] == {"b/bd": "ssd"} and plan["inputs"] == {"c": {"bd": "ssd"}}


def test_a_lost_node_resumes_from_the_pv_what_is_major(tmp_path: Path) -> None:
    run = chain(tmp_path, checkpoint={"major": ["bd"]})
    run.behaviours["c"] = writes(code=1)
    assert run.run().exit_code == EXIT_FAILURE
    for lost in ("shm", "ssd"):  # the node went: its shm and its SSD
        shutil.rmtree(tmp_path / "run" / lost)
    run.behaviours["c"] = writes("cd")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["c"]
    assert run.last_plan()["restore"] == {"b/bd": "pv"}


def test_without_any_copy_the_producers_run_again(tmp_path: Path) -> None:
    run = chain(tmp_path)
    run.behaviours["c"] = writes(code=1)
    assert run.run().exit_code == EXIT_FAILURE
    for lost in ("shm", "ssd", "pv"):
        shutil.rmtree(tmp_path / "run" / lost, ignore_errors=True)
    run.behaviours["c"] = writes("cd")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["a", "b", "c"]


def test_a_commit_left_unvetted_is_checked_and_reused(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"tree": {"outputs": ["t"]}, "use": {"inputs": ["t"], "outputs": ["u"]}},
                          results=["u"])

    def tree(call: StepCall) -> Outcome:
        (call.layout.staging_dir("tree") / "t").mkdir()
        (call.layout.staging_dir("tree") / "t" / "leaf").write_text("leaf")
        return Outcome()
    run = Harness(tmp_path / "run", spec, {"tree": tree, "use": writes(code=1)})
    assert run.run().exit_code == EXIT_FAILURE
    record = tmp_path / "run" / "shm" / "committed" / "tree" / ".commit.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "vetted": False, "seals": {}}))  # as if the run died before the verdict
    run.behaviours["use"] = writes("u")
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.spawned() == ["use"]
    assert json.loads(record.read_text())["vetted"] is True


def test_a_result_that_cannot_be_delivered_fails_the_run_as_an_environment_problem(tmp_path: Path) -> None:
    run = chain(tmp_path)
    (tmp_path / "run" / "results").mkdir(parents=True)
    (tmp_path / "run" / "results" / RESULT_RECORDS_DIR).write_text("a file where delivery records go")
    summary = run.run()
    assert (summary.exit_code, summary.status) == (EXIT_ENVIRONMENT, RunStatus.FAILED)
    assert any("results not delivered: cd" in warning for warning in summary.warnings)


def test_a_step_that_changes_its_input_fails_without_a_retry(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]},
                                           "b": {"inputs": ["ad"], "outputs": ["bd"], "retries": 3}}, results=["bd"])

    def tamper(call: StepCall) -> Outcome:
        path = call.input_path("ad")
        path.chmod(0o644)
        path.write_text("changed")
        call.write("bd")
        return Outcome()
    run = Harness(tmp_path / "run", spec, {"a": writes("ad"), "b": tamper})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert "step b read data that was not as committed: 'ad' (committed by step a) changed" in summary.message
    assert run.host is not None and run.host.attempts["b"] == 1
    assert not run.committed("b", "bd")


def test_data_changed_by_a_step_that_does_not_read_it_fails_the_run_at_its_end(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad", "side"]}, "b": {"inputs": ["ad"],
                                                                                   "outputs": ["bd"]}},
                          results=["bd", "side"])

    def tamper(call: StepCall) -> Outcome:
        side = call.layout.input_path("a", "side")
        side.chmod(0o644)
        side.write_text("changed")
        call.write("bd")
        return Outcome()
    run = Harness(tmp_path / "run", spec, {"a": writes("ad", "side"), "b": tamper})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert "'side' (committed by step a)" in summary.message and "changed after its commit" in summary.message
    delivered = tmp_path / "run" / "results" / "side"
    assert not delivered.exists() or delivered.read_text() == "x"  # copied before the change, or refused


def test_a_line_another_process_adds_to_the_journal_fails_the_run(tmp_path: Path) -> None:
    run = chain(tmp_path)

    def forge(call: StepCall) -> Outcome:
        journal = call.layout.journal
        journal.chmod(0o644)
        with open(journal, "a") as forger:
            forger.write('{"event": "run-end"}\\n')
        call.write("cd")
        return Outcome()
    run.behaviours["c"] = forge
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE and "written by another process" in summary.message
