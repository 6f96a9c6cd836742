"""One run per shard at a time: a second run waits for the first, or exits 3 naming its pid; the lock is held by
every process of a run, so a resume after kill -9 of the conductor starts only once the old steps are gone."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkpoint_support import runtime_command, wait_for
from conftest import imagekit, journal_entries, write_pipeline, write_step
from imagekit_runtime.run.shard_lock import INHERITED_FD_FLOOR, ShardBusy, acquire, held


# ------------------------------------------------------------------ in-process
def test_a_second_lock_of_the_shard_waits_then_names_the_holder(tmp_path):
    with held(tmp_path, 0, "shard 0 of p") as first:
        assert first.fd >= INHERITED_FD_FLOOR
        assert (tmp_path / "run.lock").read_text() == f"{os.getpid()}\n"
        started = time.monotonic()
        with pytest.raises(ShardBusy) as busy:
            acquire(tmp_path, 0.3, "shard 0 of p")
        assert time.monotonic() - started >= 0.3
        assert str(busy.value).startswith(f"shard 0 of p is being run by pid {os.getpid()} (")
        assert "--wait-lock SECONDS" in str(busy.value) and "\n" not in str(busy.value)
        assert busy.value.exit_code == 3
    acquire(tmp_path, 0, "shard 0 of p").release()  # released with the last descriptor


def test_the_lock_stays_held_while_a_process_that_inherited_it_lives(tmp_path):
    lock = acquire(tmp_path, 0, "shard 0 of p")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             pass_fds=(lock.fd,))
    lock.release()
    try:
        with pytest.raises(ShardBusy, match="which has exited|pid"):
            acquire(tmp_path, 0, "shard 0 of p")
    finally:
        child.communicate(b"")
    acquire(tmp_path, 0, "shard 0 of p").release()


# ------------------------------------------------------------------ real runs
def gated_pipeline(root: Path) -> tuple[Path, Path]:
    """One step: held while <gate>/hold exists; with <gate>/stubborn it ignores SIGTERM and never ends."""
    gate = root / "gate"
    gate.mkdir()
    write_step(root / "steps", "slow", """
        echo $$ > "$GATE/pid"
        if [ -e "$GATE/stubborn" ]; then trap '' TERM; while :; do sleep 0.05; done; fi
        while [ -e "$GATE/hold" ]; do sleep 0.02; done
        echo done > "$IMAGEKIT_OUT_DONE"
        """, outputs=["done"])
    return write_pipeline(root, "locked", ["slow"], results=["done"], grace_seconds=3,
                          params={"GATE": str(gate)}), gate


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def run_starts(journal: Path) -> int:
    return sum(1 for e in journal_entries(journal) if e["event"] == "run-start") if journal.exists() else 0


def test_two_runs_of_one_shard_the_second_waits_or_exits_3_naming_the_pid(tmp_path, locations):
    pipeline, gate = gated_pipeline(tmp_path)
    (gate / "hold").touch()
    first = subprocess.Popen(runtime_command(pipeline, locations), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    journal = locations.journal("locked")
    try:
        wait_for(lambda: (gate / "pid").exists())
        refused = imagekit("run", pipeline, *locations.args(), "--wait-lock", "0")
        assert refused.returncode == 3, refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: shard 0 of locked is being run by pid {first.pid} (")
        waited_log = tmp_path / "waiting.stderr"
        with open(waited_log, "w") as waited_stderr:
            waiting = subprocess.Popen([sys.executable, "-m", "imagekit.cli.main", "run", str(pipeline),
                                        *locations.args(), "--wait-lock", "30"], stdout=subprocess.DEVNULL,
                                       stderr=waited_stderr)
        wait_for(lambda: f"is being run by pid {first.pid}: waiting up to 30s" in waited_log.read_text())
        time.sleep(0.3)
        assert waiting.poll() is None and run_starts(journal) == 1
        (gate / "hold").unlink()
        _, first_stderr = first.communicate(timeout=30)
        assert first.returncode == 0, first_stderr
        assert waiting.wait(timeout=60) == 0, waited_log.read_text()
        assert "already complete" in waited_log.read_text()
        events = [e["event"] for e in journal_entries(journal) if e["event"] in ("run-start", "run-end")]
        assert events == ["run-start", "run-end", "run-start", "run-end"]  # one after the other, never interleaved
    finally:
        (gate / "hold").unlink(missing_ok=True)
        first.kill()


def test_a_resume_after_kill_9_of_the_conductor_waits_for_the_old_step_to_end(tmp_path, locations):
    pipeline, gate = gated_pipeline(tmp_path)
    (gate / "stubborn").touch()
    conductor = subprocess.Popen(runtime_command(pipeline, locations), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    journal = locations.journal("locked")
    wait_for(lambda: (gate / "pid").exists() and (gate / "pid").read_text().strip().isdigit())
    old_step = int((gate / "pid").read_text())
    os.kill(conductor.pid, signal.SIGKILL)
    conductor.wait()
    (gate / "stubborn").unlink()
    (gate / "pid").unlink()
    try:
        assert alive(old_step)  # supervisord is stopping it: SIGTERM ignored, SIGKILL after grace_seconds
        refused = imagekit("run", pipeline, *locations.args(), "--wait-lock", "0")
        assert refused.returncode == 3, refused.stderr
        assert f"processes of the run of pid {conductor.pid} (which has exited)" in refused.stderr
        resume = subprocess.Popen(runtime_command(pipeline, locations, "--wait-lock", "30"),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        waited = False
        while True:
            starts = run_starts(journal)
            if not alive(old_step):
                break
            assert starts == 1, "the resume started while a step of the killed run was still alive"
            waited = True
            time.sleep(0.01)
        assert waited
        _, stderr = resume.communicate(timeout=60)
        assert resume.returncode == 0, stderr
        assert (locations.results / "done").read_text() == "done\n"
        assert run_starts(journal) == 2
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_step, signal.SIGKILL)
