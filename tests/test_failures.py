"""A failing step is retried, then stops the pipeline with exit 1; SIGTERM stops it with 143; shm exhaustion
never commits a partial output."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from conftest import imagekit, journal_entries, last_run, start_imagekit, started_steps, write_pipeline, write_step
from imagekit_core import contract


def test_failing_step_is_retried_then_stops_the_rest(tmp_path, locations):
    marker = tmp_path / "attempts"
    write_step(tmp_path / "steps", "seed", 'echo seed > "$IMAGEKIT_OUT_SEED"', outputs=["seed"])
    write_step(tmp_path / "steps", "flaky", f"""
        echo attempt >> {marker}
        echo "partial" > "$IMAGEKIT_OUT_BROKEN"
        echo "flaky: cannot go on, line one"
        echo "flaky: giving up for real" >&2
        exit 3
        """, inputs=["seed"], outputs=["broken"], retries=2)
    # `long` runs beside flaky and must be stopped with SIGTERM when flaky gives up.
    write_step(tmp_path / "steps", "long", f"""
        trap 'echo got-term > {tmp_path}/long-term; exit 143' TERM
        sleep 60 & wait
        echo done > "$IMAGEKIT_OUT_LATE"
        """, inputs=["seed"], outputs=["late"])
    write_step(tmp_path / "steps", "after", 'cat "$IMAGEKIT_IN_BROKEN" > "$IMAGEKIT_OUT_END"',
               inputs=["broken"], outputs=["end"])
    pipeline = write_pipeline(tmp_path, "failing", ["seed", "flaky", "long", "after"], parallelism=2,
                              grace_seconds=5)
    started = time.monotonic()
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 30  # long was stopped, not waited for
    assert marker.read_text().count("attempt") == 3  # 1 + 2 retries
    assert (tmp_path / "long-term").read_text().strip() == "got-term"
    steps = {s["name"]: s for s in result.summary["steps"]}
    assert steps["flaky"]["state"] == "failed" and steps["flaky"]["attempts"] == 3
    assert steps["flaky"]["exit_code"] == 3
    assert steps["long"]["state"] == "stopped"
    assert steps["after"]["state"] == "stopped" and steps["after"]["attempts"] == 0
    assert "after" not in started_steps(locations.journal("failing"))
    # The failing step's last lines, its exit status and attempts are on stderr.
    assert "step flaky failed after 3 attempts: exited with status 3" in result.stderr
    assert "[flaky] flaky: giving up for real" in result.stderr
    # Nothing of the failed step was committed; the committed seed is intact.
    data = locations.data_root("failing")
    assert not (data / "committed" / "flaky").exists()
    assert not any((data / "staging").iterdir())
    assert (data / "committed" / "seed" / "seed").read_text() == "seed\n"
    backoffs = [e for e in last_run(locations.journal("failing")) if e.get("to") == "backoff"]
    assert len(backoffs) == 2


def test_step_that_exits_zero_without_its_output_fails(tmp_path, locations):
    write_step(tmp_path / "steps", "lazy", "echo forgot", outputs=["thing"])
    pipeline = write_pipeline(tmp_path, "lazy", ["lazy"])
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1
    assert "did not write its output 'thing'" in result.stderr


def test_missing_program_is_a_bad_input(tmp_path, locations):
    step = write_step(tmp_path / "steps", "ghost", "true", outputs=["x"])
    (step / "step.yaml").write_text("name: ghost\ncommand: [no-such-program-xyz]\noutputs: [x]\n")
    pipeline = write_pipeline(tmp_path, "ghost", ["ghost"])
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 2
    assert "no-such-program-xyz" in result.stderr and "step.yaml" in result.stderr


def test_sigterm_stops_steps_cleanly_and_keeps_committed_data(tmp_path, locations):
    write_step(tmp_path / "steps", "first", 'echo kept > "$IMAGEKIT_OUT_KEPT"', outputs=["kept"])
    write_step(tmp_path / "steps", "second", f"""
        trap 'echo term > {tmp_path}/second-term; exit 143' TERM
        echo half > "$IMAGEKIT_OUT_HALF"
        sleep 60 & wait
        """, inputs=["kept"], outputs=["half"])
    pipeline = write_pipeline(tmp_path, "sigterm", ["first", "second"], results=["half"])
    runner = start_imagekit("run", pipeline, *locations.args(), "--output", "json")
    journal = locations.journal("sigterm")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and "second" in started_steps(journal):
            break
        time.sleep(0.05)
    time.sleep(0.3)
    runner.send_signal(signal.SIGTERM)
    stdout, stderr = runner.communicate(timeout=30)
    assert runner.returncode == 143, stderr
    assert (tmp_path / "second-term").read_text().strip() == "term"
    summary = json.loads(stdout)
    assert summary["status"] == "terminated"
    assert {s["name"]: s["state"] for s in summary["steps"]} == {"first": "retired", "second": "stopped"}
    data = locations.data_root("sigterm")
    assert (data / "committed" / "first" / "kept").read_text() == "kept\n"
    assert not (data / "committed" / "second").exists()
    # No orphan: the stopped step's shell is gone.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "steps" / "second")], capture_output=True)
    assert leftover.returncode == 1
    # Resuming reuses the committed output and runs only the stopped step.
    (tmp_path / "steps" / "second" / "run.sh").write_text('cat "$IMAGEKIT_IN_KEPT" > "$IMAGEKIT_OUT_HALF"\n')
    again = imagekit("run", pipeline, *locations.args())
    assert again.returncode == 0, again.stderr
    assert started_steps(journal) == ["second"]


def test_enospc_names_the_shm_size_and_commits_nothing(tmp_path, locations, tmpfs):
    small_tmpfs = tmpfs("4m")
    write_step(tmp_path / "steps", "small", 'head -c 1000000 /dev/zero > "$IMAGEKIT_OUT_SMALL"', outputs=["small"])
    write_step(tmp_path / "steps", "huge", """
        from imagekit_runtime import step
        with step.open_output("huge") as out:
            for _ in range(64):
                out.write(b"x" * (1 << 20))
        """, inputs=["small"], outputs=["huge"], shell=False, retries=1)
    # The declared shm fits the tmpfs (the preflight check passes); the step then writes more than it holds.
    pipeline = write_pipeline(tmp_path, "enospc", ["small", "huge"], results=["huge"], shm="4Mi")
    result = imagekit("run", pipeline, "--shm-dir", small_tmpfs, "--ssd", locations.ssd, "--pv", locations.pv,
                      "--results", locations.results)
    assert result.returncode == 1, result.stderr
    line = next(text for text in result.stderr.splitlines() if text.startswith("error: step huge failed"))
    assert "No space left on device" in line and "shm size 4.0 MiB" in line and "in use" in line
    data = small_tmpfs / "enospc" / "shard-0"
    assert not (data / "committed" / "huge").exists()
    assert not list((data / "staging").iterdir())
    assert not (locations.results / "huge").exists()
    assert (data / "committed" / "small" / "small").stat().st_size == 1000000


def test_intermediate_data_is_freed_after_its_last_consumer(tmp_path, locations):
    write_step(tmp_path / "steps", "make", 'head -c 3000000 /dev/urandom > "$IMAGEKIT_OUT_RAW"', outputs=["raw"])
    write_step(tmp_path / "steps", "half", 'head -c 1000000 "$IMAGEKIT_IN_RAW" > "$IMAGEKIT_OUT_HALF"',
               inputs=["raw"], outputs=["half"])
    write_step(tmp_path / "steps", "tail", 'tail -c 1000 "$IMAGEKIT_IN_RAW" > "$IMAGEKIT_OUT_TAIL"',
               inputs=["raw"], outputs=["tail"])
    write_step(tmp_path / "steps", "join", 'cat "$IMAGEKIT_IN_HALF" "$IMAGEKIT_IN_TAIL" > "$IMAGEKIT_OUT_OUT"',
               inputs=["half", "tail"], outputs=["out"])
    pipeline = write_pipeline(tmp_path, "freeing", ["make", "half", "tail", "join"], results=["out"])
    result = imagekit("run", pipeline, *locations.args(), "--no-checkpoints", "--output", "json")
    assert result.returncode == 0, result.stderr
    committed = locations.data_root("freeing") / "committed"
    assert not (committed / "make" / "raw").exists()
    assert not (committed / "half" / "half").exists() and not (committed / "tail" / "tail").exists()
    assert (committed / "join" / "out").stat().st_size == 1001000  # a result is never freed
    entries = journal_entries(locations.journal("freeing"))
    freed = {e["data"]: e for e in entries if e["event"] == contract.Event.FREED}
    assert set(freed) == {"raw", "half", "tail"}
    # raw is freed only after both of its consumers committed.
    committed_at = {e["step"]: e["ts"] for e in entries if e.get("to") == "committed"}
    assert freed["raw"]["ts"] >= max(committed_at["half"], committed_at["tail"])
    assert result.summary["peak_shm_bytes"] >= 3000000 + 1000000
    assert result.summary["peak_shm_bytes"] < 3000000 + 1000000 + 1001000 + 1000


def test_a_full_results_directory_fails_the_run_and_leaves_no_partial_file(tmp_path, locations, tmpfs):
    """The results directory holds 1 MiB, the result is 2 MiB: not "completed", exit 3, nothing half-written."""
    full = tmpfs("1m")
    write_step(tmp_path / "steps", "big", 'head -c 2000000 /dev/zero > "$IMAGEKIT_OUT_BIG"', outputs=["big"])
    pipeline = write_pipeline(tmp_path, "full", ["big"], results=["big"])
    result = imagekit("run", pipeline, "--shm-dir", locations.shm, "--ssd", locations.ssd, "--pv", locations.pv,
                      "--results", full)
    assert result.returncode == 3, result.stderr
    assert "completed" not in result.stderr.splitlines()[-1]
    assert "results not delivered" in result.stderr and str(full) in result.stderr
    assert [path.name for path in full.iterdir() if path.name != ".imagekit"] == []  # no partial copy
    assert not (full / ".imagekit-complete.json").exists()


def test_a_daemon_a_step_leaves_behind_dies_with_the_step(tmp_path, locations):
    """A step that double-forks a daemon out of its process group (setsid) and exits: the daemon is killed when the
    step ends, so it neither outlives the run nor holds the shard lock against the next run."""
    marker = tmp_path / "daemon-pid"
    write_step(tmp_path / "steps", "spawn", f"""
        setsid sh -c 'echo $$ > {marker}; exec sleep 1000' < /dev/null > /dev/null 2>&1 &
        while [ ! -s {marker} ]; do sleep 0.01; done
        echo done > "$IMAGEKIT_OUT_X"
        """, outputs=["x"])
    pipeline = write_pipeline(tmp_path, "daemon", ["spawn"], results=["x"])
    args = ("--shm-dir", locations.shm, "--ssd", locations.ssd, "--pv", locations.pv, "--results", locations.results)
    result = imagekit("run", pipeline, *args)
    assert result.returncode == 0, result.stderr
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the daemon outlived its step"
        time.sleep(0.05)
    again = imagekit("run", pipeline, *args, "--force", "--wait-lock", "2")
    assert again.returncode == 0, again.stderr  # no leftover holds the shard lock
