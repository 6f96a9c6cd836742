"""The conductor's parts, in process: the program a step runs as, the run summary, the failure diagnosis."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagekit_core.contract import RunStatus
from imagekit_core.errors import SpecError
from imagekit_core.spec import StepSpec
from imagekit_runtime.layout import RunLayout
from imagekit_runtime.run import diagnosis
from imagekit_runtime.run.summary import RunSummary, StepRun, format_summary
from imagekit_runtime.states import StepState
from imagekit_runtime.supervise.client import ProcessInfo
from imagekit_runtime.supervise.environments import StepPaths
from imagekit_runtime.supervise.step_program import RunContext, step_argv, step_environment, step_program

MiB = 1024 * 1024


@pytest.fixture
def run(tmp_path: Path) -> RunContext:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "shm" / "run", results_dir=tmp_path / "results",
                       ssd_dir=None, pv_dir=None)
    return RunContext(layout=layout, params={"SIZE": "8Mi", "SHARED": "param"}, shard_index=1, shard_count=4,
                      producers={"corpus": "generate", "vocab-list": "tokenize"}, runtime_path=Path("/rt"),
                      grace_seconds=7.0)


def a_step(tmp_path: Path, command: tuple[str, ...] = ("sh", "run.sh"), **settings: Any) -> StepSpec:
    directory = tmp_path / "steps" / "count"
    directory.mkdir(parents=True, exist_ok=True)
    return StepSpec(name="count", directory=directory, command=command, inputs=("corpus", "vocab-list"),
                    outputs=("counts", "top-words"), source_file=directory / "step.yaml", **settings)


# ------------------------------------------------------------------ the step program
def test_a_step_sees_its_inputs_outputs_shard_and_run_dir(tmp_path: Path, run: RunContext) -> None:
    env = step_environment(a_step(tmp_path), run, StepPaths(), {"PATH": "/usr/bin"})
    shm = tmp_path / "shm"
    assert env["IMAGEKIT_IN_CORPUS"] == str(shm / "committed" / "generate" / "corpus")
    assert env["IMAGEKIT_IN_VOCAB_LIST"] == str(shm / "committed" / "tokenize" / "vocab-list")
    assert env["IMAGEKIT_OUT_COUNTS"] == str(shm / "staging" / "count" / "counts")
    assert env["IMAGEKIT_OUT_TOP_WORDS"] == str(shm / "staging" / "count" / "top-words")
    assert (env["IMAGEKIT_SHARD_INDEX"], env["IMAGEKIT_SHARD_COUNT"]) == ("1", "4")
    assert env["IMAGEKIT_RUN_DIR"] == str(shm / "run")
    assert env["IMAGEKIT_STEP"] == "count"
    assert env["SIZE"] == "8Mi"
    assert (env["PYTHONUNBUFFERED"], env["PYTHONDONTWRITEBYTECODE"]) == ("1", "1")


def test_step_env_overrides_params_and_the_contract_overrides_both(tmp_path: Path, run: RunContext) -> None:
    step = a_step(tmp_path, env=(("SHARED", "step"), ("IMAGEKIT_SHARD_INDEX", "9")))
    env = step_environment(step, run, StepPaths(), {})
    assert env["SHARED"] == "step"
    assert env["IMAGEKIT_SHARD_INDEX"] == "1"


def test_the_steps_own_environment_comes_first_on_path_and_pythonpath(tmp_path: Path, run: RunContext) -> None:
    paths = StepPaths(bin_dirs=(Path("/venv/bin"),), python_paths=(Path("/deps/count"),))
    env = step_environment(a_step(tmp_path), run, paths, {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/mine"})
    assert env["PATH"] == os.pathsep.join(["/venv/bin", str(tmp_path / "shm" / "run" / "bin"), "/usr/bin:/bin"])
    assert env["PYTHONPATH"] == os.pathsep.join(["/deps/count", "/rt", "/mine"])
    assert step_environment(a_step(tmp_path), run, StepPaths(), {})["PATH"] == os.pathsep.join(
        [str(tmp_path / "shm" / "run" / "bin"), os.defpath])


def test_argv0_is_found_on_the_path_or_in_the_step_directory(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    program = tools / "wordcount"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    assert step_argv(a_step(tmp_path, ("wordcount", "-v")), str(tools)) == (str(program), "-v")
    step = a_step(tmp_path, ("./bin/run", "x"))
    assert step_argv(step, "") == (str((step.directory / "bin" / "run").resolve()), "x")
    assert step_argv(a_step(tmp_path, ("/bin/sh", "-c", "true")), "") == ("/bin/sh", "-c", "true")


def test_a_program_not_on_the_path_is_bad_input_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as raised:
        step_argv(a_step(tmp_path, ("no-such-program-xyz",)), str(tmp_path))
    message = str(raised.value)
    assert "step.yaml" in message and "command" in message and "no-such-program-xyz" in message
    assert "\n" not in message


def test_the_program_logs_to_the_step_log_and_stops_within_the_grace(tmp_path: Path, run: RunContext) -> None:
    program = step_program(a_step(tmp_path, ("/bin/sh", "run.sh")), run, StepPaths(), {"PATH": "/usr/bin"})
    assert program.name == "count"
    assert program.argv == ("/bin/sh", "run.sh")
    assert program.directory == tmp_path / "steps" / "count"
    assert program.log_file == tmp_path / "shm" / "run" / "logs" / "count.log"
    assert program.stop_wait_seconds == 7.0
    assert program.environment["IMAGEKIT_STEP"] == "count"


# ------------------------------------------------------------------ the summary
def a_summary(**changes: Any) -> RunSummary:
    steps = [StepRun("generate", StepState.RETIRED, attempts=1, exit_code=0, bytes_out=8 * MiB, wall_seconds=0.5),
             StepRun("count", StepState.FAILED, attempts=3, exit_code=2, bytes_in=8 * MiB, wall_seconds=1.25,
                     message="exited with status 2", inputs={"tokens": "run", "vocab": "ssd"})]
    fields: dict[str, Any] = dict(pipeline="wordfreq", run_id="r1", shard_index=0, shard_count=2, exit_code=1,
                                     status=RunStatus.FAILED, wall_seconds=2.3456, peak_shm_bytes=16 * MiB,
                                     steps=steps, results_dir="/out", message="step count failed after 3 attempts",
                                     warnings=["ssd checkpoint of corpus skipped"])
    fields.update(changes)
    return RunSummary(**fields)


def test_the_json_summary_has_every_step_and_the_run(tmp_path: Path) -> None:
    data = json.loads(json.dumps(a_summary().to_json()))
    assert data["status"] == "failed" and data["exit_code"] == 1 and data["run"] == "r1"
    assert data["shard"] == {"index": 0, "count": 2}
    assert data["wall_seconds"] == 2.346 and data["peak_shm_bytes"] == 16 * MiB
    assert data["steps"][1] == {"name": "count", "state": "failed", "attempts": 3, "exit_code": 2,
                                "wall_seconds": 1.25, "bytes_in": 8 * MiB, "bytes_out": 0,
                                "message": "exited with status 2", "inputs": {"tokens": "run", "vocab": "ssd"}}
    assert data["warnings"] == ["ssd checkpoint of corpus skipped"]


def test_the_text_summary_has_a_line_per_step_then_warnings_and_the_message() -> None:
    lines = format_summary(a_summary()).splitlines()
    assert lines[0] == ("wordfreq shard 0/2: failed in 2.35s (exit 1); peak shm 16.0 MiB; results in /out")
    assert lines[2].split() == ["generate", "retired", "0", "1", "0.50", "0", "B", "8.0", "MiB"]
    assert lines[3].split()[:4] == ["count", "failed", "2", "3"]
    assert lines[4:] == ["  inputs from before this run: count ← tokens (run), vocab (ssd)",
                         "  warning: ssd checkpoint of corpus skipped", "  step count failed after 3 attempts"]
    never_ran = format_summary(a_summary(steps=[StepRun("late")], warnings=[], message="")).splitlines()
    assert never_ran[2].split()[:3] == ["late", "waiting", "-"] and len(never_ran) == 3


# ------------------------------------------------------------------ the diagnosis
def info(state: str, exit_status: int = 0, description: str = "") -> ProcessInfo:
    return ProcessInfo(name="count", state=state, exit_status=exit_status, pid=0, description=description)


def test_an_exit_is_a_success_only_when_it_exits_zero() -> None:
    assert diagnosis.succeeded(info("EXITED", 0))
    assert not diagnosis.succeeded(info("EXITED", 1))
    assert not diagnosis.succeeded(info("FATAL", 0))
    assert (diagnosis.exit_code_of(info("EXITED", 3)), diagnosis.exit_code_of(info("FATAL", 0))) == (3, -1)


def test_exit_reasons_say_how_the_attempt_ended(tmp_path: Path) -> None:
    log = tmp_path / "supervisord.log"
    assert diagnosis.exit_reason(info("EXITED", 3), log) == "exited with status 3"
    assert diagnosis.exit_reason(info("EXITED", -9), log) == "was killed by a signal"  # no log to ask
    log.write_text("2026-01-01 INFO spawned: 'count' with pid 42\n"
                   "2026-01-01 WARN exited: other (terminated by SIGTERM; not expected)\n"
                   "2026-01-01 WARN exited: count (terminated by SIGKILL; not expected)\n")
    assert diagnosis.exit_reason(info("EXITED", -9), log) == "was terminated by SIGKILL"
    fatal = diagnosis.exit_reason(info("FATAL", description="Exited too quickly"), log)
    assert fatal == f"could not be started (Exited too quickly; see {log})"
    backoff = diagnosis.exit_reason(info("BACKOFF", description="spawn"), log)
    assert backoff == "ended in supervisord state BACKOFF (spawn)"


def test_a_full_shm_is_named_with_its_sizes_and_the_fix(tmp_path: Path) -> None:
    def roomy(_path: Path) -> tuple[int, int]:
        return 64 * MiB, 8 * MiB

    def full(_path: Path) -> tuple[int, int]:
        return 64 * MiB, 64 * MiB - 1024

    logged = ["writing…", "OSError: [Errno 28] No space left on device"]
    message = diagnosis.enospc_message(logged, tmp_path, 4 * MiB, usage=roomy)
    assert message == (f"shared memory is full (No space left on device) in {tmp_path}: shm size 64.0 MiB, "
                       f"8.0 MiB in use, 4.0 MiB of it committed pipeline data; "
                       f"raise `shm` in the pipeline or the size of {tmp_path}")
    assert diagnosis.enospc_message(["fine"], tmp_path, 0, usage=full).startswith("shared memory is full")
    assert diagnosis.enospc_message(["Traceback", "ValueError"], tmp_path, 0, usage=roomy) == ""


def test_the_failure_line_and_the_log_tail(tmp_path: Path) -> None:
    assert diagnosis.failure_message("count", 1, "exited with status 2") == \
        "step count failed after 1 attempt: exited with status 2"
    assert diagnosis.failure_message("count", 3, "x") == "step count failed after 3 attempts: x"
    log = tmp_path / "count.log"
    assert diagnosis.log_tail("count", log, ["a", "b"]) == f"last lines of {log}:\n  [count] a\n  [count] b"
    assert diagnosis.log_tail("count", log, []) == ""
