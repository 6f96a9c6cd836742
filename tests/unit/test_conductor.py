"""The conductor's decisions, in process, with a fake step host (conductor_fakes.py): scheduling order and
parallelism by kind, warm gates, commits and step.done(), retries and backoff, failure and stop, freeing
(test_conductor_resume.py: what a run decides from what an earlier one left, and seals). No test here
starts a process."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from imagekit_core.contract import RunStatus
from imagekit_core.errors import EXIT_FAILURE, EXIT_OK, EXIT_TERMINATED
from imagekit_runtime.states import TRANSITIONS, StepState

from .conductor_fakes import Behaviour, FakeHost, Harness, Outcome, StepCall, write_pipeline, writes

CHAIN = {"a": {"outputs": ["ad"]}, "b": {"inputs": ["ad"], "outputs": ["bd"]}, "c": {"inputs": ["bd"], "outputs": ["cd"]}}


def chain(tmp_path: Path, **settings: object) -> Harness:
    spec = write_pipeline(tmp_path / "p", CHAIN, results=["cd"], **settings)
    return Harness(tmp_path / "run", spec, {"a": writes("ad"), "b": writes("bd"), "c": writes("cd")})


def copies_input(source: str, output: str) -> Behaviour:
    def behave(call: StepCall) -> Outcome:
        call.write(output, call.read(source) + "+")
        return Outcome()
    return behave


# ------------------------------------------------------------------ order
def test_a_chain_runs_in_dataflow_order_and_completes(tmp_path: Path) -> None:
    run = chain(tmp_path)
    summary = run.run()
    assert (summary.exit_code, summary.status) == (EXIT_OK, RunStatus.COMPLETED)
    assert run.host is not None and run.host.spawned() == ["a", "b", "c"]
    assert run.transitions("b") == ["ready", "running", "committing", "committed", "retired"]
    assert (tmp_path / "run" / "results" / "cd").read_text() == "x"


def test_a_step_starts_only_once_every_input_is_committed(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"x": {"outputs": ["xd"]}, "y": {"outputs": ["yd"]},
                                           "join": {"inputs": ["xd", "yd"], "outputs": ["j"]}}, results=["j"])
    run = Harness(tmp_path / "run", spec, {"x": writes("xd"), "y": writes("yd", ticks=3), "join": writes("j")})
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None
    events = run.host.events
    assert events.index(("spawn", "join")) > events.index(("ended", "y"))


def test_independent_steps_run_side_by_side(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {n: {"outputs": [f"{n}d"]} for n in "xyz"}, parallelism={"cpu": 3},
                          results=["xd", "yd", "zd"])
    run = Harness(tmp_path / "run", spec, {n: writes(f"{n}d", ticks=2) for n in "xyz"})
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.most_at_once == 3


def test_the_cpu_limit_holds(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {n: {"outputs": [f"{n}d"]} for n in "wxyz"}, parallelism={"cpu": 2},
                          results=["wd", "xd", "yd", "zd"])
    run = Harness(tmp_path / "run", spec, {n: writes(f"{n}d", ticks=2) for n in "wxyz"})
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.most_at_once == 2


def test_io_steps_run_beyond_the_cpu_limit(tmp_path: Path) -> None:
    steps: dict[str, dict[str, Any]] = {**{f"io{i}": {"outputs": [f"io{i}d"], "kind": "io"} for i in range(3)},
                                        "cpu0": {"outputs": ["cd"]}}
    spec = write_pipeline(tmp_path / "p", steps, parallelism={"cpu": 1, "io": 3},
                          results=["io0d", "io1d", "io2d", "cd"])
    run = Harness(tmp_path / "run", spec, {name: writes(fields["outputs"][0], ticks=2) for name, fields in steps.items()})
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None and run.host.most_at_once == 4  # 3 io slots + 1 cpu slot


def test_the_parallelism_option_overrides_the_pipeline(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {n: {"outputs": [f"{n}d"]} for n in "xyz"}, parallelism={"cpu": 3},
                          results=["xd", "yd", "zd"])
    run = Harness(tmp_path / "run", spec, {n: writes(f"{n}d", ticks=2) for n in "xyz"})
    assert run.run(parallelism=1).exit_code == EXIT_OK
    assert run.host is not None and run.host.most_at_once == 1


def test_every_journaled_transition_is_an_allowed_one(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}, "b": {"inputs": ["ad"], "outputs": ["bd"],
                                                                           "retries": 1, "warm": True}},
                          results=["bd"])
    run = Harness(tmp_path / "run", spec, {"a": writes("ad", ticks=2),
                                           "b": lambda call: writes("bd", code=0 if call.attempt > 1 else 5)(call)})
    assert run.run().exit_code == EXIT_OK
    for entry in (e for e in run.journal() if e["event"] == "transition"):
        assert StepState(entry["to"]) in TRANSITIONS[StepState(entry["from"])], entry


# ------------------------------------------------------------------ warm
def warm_pair(tmp_path: Path, producer_ticks: int = 3, **consumer: object) -> Harness:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}, "w": {"inputs": ["ad"], "outputs": ["wd"],
                                                                           "warm": True, **consumer}},
                          results=["wd"])
    return Harness(tmp_path / "run", spec, {"a": writes("ad", ticks=producer_ticks),
                                            "w": copies_input("ad", "wd")})


def test_a_warm_step_starts_at_its_gate_before_its_inputs_exist(tmp_path: Path) -> None:
    run = warm_pair(tmp_path)
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None
    events = run.host.events
    assert events.index(("spawn-gated", "w")) < events.index(("ended", "a"))
    assert run.transitions("w")[:2] == ["warm", "running"]


def test_a_warm_steps_gate_opens_when_its_inputs_are_committed(tmp_path: Path) -> None:
    run = warm_pair(tmp_path)
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None
    events = run.host.events
    assert events.index(("open", "w")) > events.index(("ended", "a"))
    assert (tmp_path / "run" / "results" / "wd").read_text() == "x+"


def test_a_warm_step_that_ends_before_its_gate_opens_is_a_failed_attempt(tmp_path: Path) -> None:
    run = warm_pair(tmp_path, producer_ticks=5)

    def end_it_at_its_gate(host: FakeHost) -> None:
        if host.waiting_at_gate("w"):
            host.finish("w", 0)
    run.on_wait = end_it_at_its_gate
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert "exited before its inputs were committed" in summary.message
    assert run.transitions("w") == ["warm", "failed"]


def test_a_warm_step_waiting_at_its_gate_when_the_run_stops_is_stopped(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}, "w": {"inputs": ["ad"], "outputs": ["wd"],
                                                                           "warm": True}}, results=["wd"])
    run = Harness(tmp_path / "run", spec, {"a": writes(code=4, ticks=2), "w": copies_input("ad", "wd")})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert run.transitions("w") == ["warm", "stopped"]
    assert run.host is not None and ("open", "w") not in run.host.events


# ------------------------------------------------------------ commit, done()
def test_exit_0_commits_every_output_at_once_with_its_record(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["one", "two"]}}, results=["one", "two"])
    run = Harness(tmp_path / "run", spec, {"a": writes("one", "two")})
    assert run.run().exit_code == EXIT_OK
    committed = [e for e in run.journal() if e.get("to") == "committed"]
    assert committed[0]["outputs"].keys() == {"one", "two"} and committed[0]["bytes_out"] > 0
    assert run.committed("a", "one") and run.committed("a", "two")


def test_exit_0_without_a_declared_output_is_a_failed_attempt(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["one", "two"]}}, results=["one", "two"])
    run = Harness(tmp_path / "run", spec, {"a": writes("one")})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert "did not write its output 'two'" in summary.message
    assert not (tmp_path / "run" / "shm" / "committed" / "a").exists()  # nothing of it committed


def test_an_output_that_is_a_link_out_is_refused(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["one"]}}, results=["one"])

    def links(call: StepCall) -> Outcome:
        (call.layout.staging_dir("a") / "one").symlink_to("/etc/hostname")
        return Outcome()
    run = Harness(tmp_path / "run", spec, {"a": links})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE and "is refused" in summary.message


def test_a_declared_step_hands_over_before_its_process_ends(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", CHAIN, results=["cd"])
    run = Harness(tmp_path / "run", spec, {"a": writes("ad", declare=True, ticks=4), "b": writes("bd"),
                                           "c": writes("cd")})
    assert run.run().exit_code == EXIT_OK
    assert run.host is not None
    events = run.host.events
    assert events.index(("spawn", "b")) < events.index(("ended", "a"))  # b started while a was still exiting


def test_a_crash_after_done_keeps_the_commit_with_a_warning(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": writes("ad", declare=True, code=9, ticks=1)})
    summary = run.run()
    assert summary.exit_code == EXIT_OK
    assert any("after declaring its outputs complete" in w and "its commit is kept" in w for w in summary.warnings)


def test_a_declaration_without_its_output_is_a_failed_attempt(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": lambda call: Outcome(declare=True, ticks=1)})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE and "did not write its output" in summary.message


def test_bytes_in_and_out_are_counted_in_pages(tmp_path: Path) -> None:
    run = chain(tmp_path)
    summary = run.run()
    steps = {step.name: step for step in summary.steps}
    assert steps["b"].bytes_in == steps["a"].bytes_out == 4096  # one byte takes a page of shm
    assert summary.peak_shm_bytes >= 4096


# ------------------------------------------------------------ retries
def flaky(fail_times: int, output: str, code: int = 3) -> Behaviour:
    def behave(call: StepCall) -> Outcome:
        if call.attempt <= fail_times:
            call.write(output, "partial")
            return Outcome(code=code)
        call.write(output, "whole")
        return Outcome()
    return behave


def test_a_failed_attempt_is_retried_and_its_partial_output_never_committed(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"], "retries": 2}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": flaky(2, "ad")})
    summary = run.run()
    assert summary.exit_code == EXIT_OK and summary.steps[0].attempts == 3
    assert run.transitions("a").count("backoff") == 2
    assert (tmp_path / "run" / "results" / "ad").read_text() == "whole"


def test_no_attempts_left_fails_the_run_with_the_reason(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"], "retries": 1}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": flaky(5, "ad", code=7)})
    summary = run.run()
    assert (summary.exit_code, summary.status) == (EXIT_FAILURE, RunStatus.FAILED)
    assert summary.message == "step a failed after 2 attempts: exited with status 7"
    assert run.transitions("a")[-1] == "failed"


def test_the_backoff_doubles_between_attempts(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"], "retries": 2}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": flaky(2, "ad")})
    assert run.run(retry_backoff=0.05).exit_code == EXIT_OK
    starts = [e["ts"] for e in run.journal() if e.get("step") == "a" and e.get("to") == "running"]
    first, second = starts[1] - starts[0], starts[2] - starts[1]
    assert first >= 0.05 and second >= 0.1


def test_a_warm_step_retried_waits_at_its_gate_again_when_its_inputs_are_not_there(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]},
                                           "w": {"inputs": ["ad"], "outputs": ["wd"], "warm": True, "retries": 1}},
                          results=["wd"])

    def producer(call: StepCall) -> Outcome:
        call.write("ad")
        return Outcome(hang=True)  # until the test ends it

    def drive(host: FakeHost) -> None:
        if host.waiting_at_gate("w") and host.attempts["w"] == 1:
            host.finish("w", 1)  # the first attempt ends at its gate
        elif host.waiting_at_gate("w") and host.attempts["w"] == 2 and "a" in host.running:
            host.finish("a", 0)  # the producer ends only once the retry waits at its gate
    run = Harness(tmp_path / "run", spec, {"a": producer, "w": copies_input("ad", "wd")}, on_wait=drive)
    assert run.run().exit_code == EXIT_OK
    assert run.transitions("w")[:5] == ["warm", "backoff", "waiting", "warm", "running"]


# ------------------------------------------------------------ failure, stop
def test_a_failure_stops_the_steps_running_and_the_rest_never_start(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"bad": {"outputs": ["b"]}, "long": {"outputs": ["l"]},
                                           "after": {"inputs": ["b"], "outputs": ["x"]}},
                          parallelism={"cpu": 2}, results=["x", "l"])
    run = Harness(tmp_path / "run", spec, {"bad": writes(code=2, ticks=1), "long": lambda call: Outcome(hang=True),
                                           "after": writes("x")})
    summary = run.run()
    assert summary.exit_code == EXIT_FAILURE
    assert run.host is not None and ("stop", "long") in run.host.events
    assert run.transitions("long")[-1] == "stopped"
    steps = {step.name: step for step in summary.steps}
    assert steps["after"].state is StepState.STOPPED and steps["after"].attempts == 0


def test_a_stop_request_ends_the_run_as_terminated(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"long": {"outputs": ["l"]}}, results=["l"])
    run = Harness(tmp_path / "run", spec, {"long": lambda call: Outcome(hang=True)})

    def terminate(host: FakeHost) -> None:
        assert run.conductor is not None
        run.conductor.stop_requested()
    run.on_wait = terminate
    summary = run.run()
    assert (summary.exit_code, summary.status) == (EXIT_TERMINATED, RunStatus.TERMINATED)
    assert summary.message == "stopped by SIGTERM"
    assert run.transitions("long") == ["ready", "running", "stopped"]


def test_a_stop_request_during_backoff_does_not_retry(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"], "retries": 3}}, results=["ad"])
    run = Harness(tmp_path / "run", spec, {"a": flaky(9, "ad")})

    def terminate(host: FakeHost) -> None:
        assert run.conductor is not None
        if run.conductor.backoff:
            run.conductor.stop_requested()
    run.on_wait = terminate
    summary = run.run(retry_backoff=5.0)
    assert summary.exit_code == EXIT_TERMINATED
    assert run.host is not None and run.host.attempts["a"] == 1


def test_a_failed_step_leaves_the_committed_work_of_others(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}, "b": {"inputs": ["ad"], "outputs": ["bd"]}},
                          results=["bd"])
    run = Harness(tmp_path / "run", spec, {"a": writes("ad"), "b": writes(code=1)})
    assert run.run().exit_code == EXIT_FAILURE
    assert run.committed("a", "ad")
    assert not (tmp_path / "run" / "shm" / "staging" / "b").exists() or not any(
        (tmp_path / "run" / "shm" / "staging" / "b").iterdir())


# ------------------------------------------------------------ freeing
def test_intermediate_data_is_freed_once_its_last_reader_committed(tmp_path: Path) -> None:
    run = chain(tmp_path)
    assert run.run().exit_code == EXIT_OK
    freed = {(e["step"], e["data"]) for e in run.journal() if e["event"] == "freed"}
    assert freed == {("a", "ad"), ("b", "bd")}
    assert not run.committed("a", "ad") and run.committed("c", "cd")  # cd is a result: kept


def test_data_is_not_freed_while_a_reader_still_runs(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad"]}, "fast": {"inputs": ["ad"], "outputs": ["f"]},
                                           "slow": {"inputs": ["ad"], "outputs": ["s"]}},
                          parallelism={"cpu": 2}, results=["f", "s"])
    seen: list[bool] = []

    def slow(call: StepCall) -> Outcome:
        call.write("s", call.read("ad"))
        return Outcome(ticks=5)

    def watch(host: FakeHost) -> None:
        if "slow" in host.running:
            seen.append((tmp_path / "run" / "shm" / "committed" / "a" / "ad").exists())
    run = Harness(tmp_path / "run", spec, {"a": writes("ad"), "fast": writes("f"), "slow": slow}, on_wait=watch)
    assert run.run().exit_code == EXIT_OK
    assert seen and all(seen)


def test_a_final_output_nobody_reads_is_kept_like_a_result(tmp_path: Path) -> None:
    spec = write_pipeline(tmp_path / "p", {"a": {"outputs": ["ad", "side"]}, "b": {"inputs": ["ad"],
                                                                                   "outputs": ["bd"]}},
                          results=["bd"])
    run = Harness(tmp_path / "run", spec, {"a": writes("ad", "side"), "b": writes("bd")})
    assert run.run().exit_code == EXIT_OK
    assert run.committed("a", "side") and not run.committed("a", "ad")


def test_a_complete_run_that_holds_frees_what_its_checkpoints_keep(tmp_path: Path) -> None:
    run = chain(tmp_path)
    assert run.run(hold_when_complete=True).exit_code == EXIT_OK
    assert not run.committed("c", "cd")  # the result is on the SSD and in the results directory
    assert (tmp_path / "run" / "results" / "cd").read_text() == "x"
