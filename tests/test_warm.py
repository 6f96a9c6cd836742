"""Warm steps start before their inputs are committed and wait at their gate; cpu and io slots.

Real runs (the CLI, supervisord, step processes): the gate, the stop of waiting steps and kill -9 are
about processes, so they are tested with processes.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import imagekit, journal_entries, last_run, start_imagekit, write_pipeline, write_step
from imagekit_core import contract

# A warm Python consumer: it notes that its set-up is done, then reads its input through the helper
# (which waits at the gate), and records exactly what it saw.
WARM_READER = """
import json, os, sys, time
from pathlib import Path
from imagekit_runtime import step

notes = Path(os.environ["NOTES"])
(notes / "reader-ready").write_text(str(time.time()))
data = bytes(step.read_bytes("blob"))
(notes / "reader-saw").write_text(json.dumps({"size": len(data), "ok": data == b"x" * 4_000_000,
                                               "at": time.time()}))
step.write_bytes("sum", str(len(data)).encode())
"""


def transitions(entries: list[dict], step: str) -> list[tuple[str, str, float]]:
    return [(e["from"], e["to"], e["ts"]) for e in entries
            if e["event"] == contract.Event.TRANSITION and e["step"] == step]


def first_ts(entries: list[dict], step: str, to: str) -> float:
    return next(ts for _, new, ts in transitions(entries, step) if new == to)


def warm_pipeline(root: Path, producer_script: str, *, retries: int = 0, **settings: object) -> Path:
    notes = root / "notes"
    notes.mkdir()
    write_step(root / "steps", "producer", producer_script, outputs=["blob"], retries=retries)
    write_step(root / "steps", "reader", WARM_READER, shell=False, inputs=["blob"], outputs=["sum"],
               extra={"warm": True})
    return write_pipeline(root, "warm", ["producer", "reader"], results=["sum"],
                          params={"NOTES": str(notes)}, **settings)


def test_a_warm_step_never_reads_an_uncommitted_input_even_when_its_producer_is_killed_midway(tmp_path, locations):
    # The first attempt writes half its output, then is killed (SIGKILL, midway); the retry writes it all.
    producer = f"""
        python3 -c 'import os; open(os.environ["IMAGEKIT_OUT_BLOB"], "wb").write(b"x" * 2_000_000)'
        if [ ! -e {tmp_path}/notes/killed-once ]; then
            : > {tmp_path}/notes/killed-once
            sleep 0.5
            kill -9 $$
        fi
        sleep 0.3
        python3 -c 'import os; open(os.environ["IMAGEKIT_OUT_BLOB"], "ab").write(b"x" * 2_000_000)'
        """
    pipeline = warm_pipeline(tmp_path, producer, retries=1)
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 0, result.stderr
    saw = json.loads((tmp_path / "notes" / "reader-saw").read_text())
    assert saw["size"] == 4_000_000 and saw["ok"], saw  # the whole committed blob, never the killed half
    entries = last_run(locations.journal("warm"))
    # The reader's process was up (set-up done) before the blob was committed, and read only after the commit.
    assert [new for _, new, _ in transitions(entries, "reader")][:2] == ["warm", "running"]
    committed = first_ts(entries, "producer", "committed")
    assert float((tmp_path / "notes" / "reader-ready").read_text()) < committed
    assert saw["at"] >= committed
    assert [new for _, new, _ in transitions(entries, "producer")].count("backoff") == 1
    # One process, one attempt: the reader waited through the producer's failure and retry.
    steps = {s["name"]: s for s in result.summary["steps"]}
    assert steps["reader"]["attempts"] == 1 and steps["reader"]["state"] == "retired"
    assert (locations.results / "sum").read_text() == "4000000"


def test_a_failed_upstream_stops_the_steps_waiting_on_it(tmp_path, locations):
    pipeline = warm_pipeline(tmp_path, "sleep 1; echo bad >&2; exit 3", grace_seconds=5)
    started = time.monotonic()
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 20
    assert (tmp_path / "notes" / "reader-ready").exists()  # it was started, and waited
    assert not (tmp_path / "notes" / "reader-saw").exists()  # it never got past its gate
    entries = last_run(locations.journal("warm"))
    assert [new for _, new, _ in transitions(entries, "reader")] == ["warm", "stopped"]  # never running: not run
    steps = {s["name"]: s for s in result.summary["steps"]}
    assert steps["reader"]["state"] == "stopped" and steps["producer"]["state"] == "failed"
    assert not list((locations.data_root("warm") / "run" / contract.GATES_DIR).iterdir())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_of_the_runtime_while_steps_wait_then_a_resume_gives_the_right_result(tmp_path, locations):
    hold = tmp_path / "hold"
    hold.write_text("")
    producer = f"""
        python3 -c 'import os; open(os.environ["IMAGEKIT_OUT_BLOB"], "wb").write(b"x" * 1_000_000)'
        while [ -e {hold} ]; do sleep 0.05; done
        python3 -c 'import os; open(os.environ["IMAGEKIT_OUT_BLOB"], "ab").write(b"x" * 3_000_000)'
        """
    pipeline = warm_pipeline(tmp_path, producer)
    ready = tmp_path / "notes" / "reader-ready"
    run = start_imagekit("run", pipeline, *locations.args(), "--output", "json")
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert run.poll() is None and time.monotonic() < deadline, "the warm reader never started"
            time.sleep(0.05)
        time.sleep(0.2)  # the reader is blocked at its gate, the producer mid-way
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    ready.unlink()
    hold.unlink()
    resumed = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    saw = json.loads((tmp_path / "notes" / "reader-saw").read_text())
    assert saw["size"] == 4_000_000 and saw["ok"], saw
    assert (locations.results / "sum").read_text() == "4000000"
    entries = last_run(locations.journal("warm"))
    assert [new for _, new, _ in transitions(entries, "reader")][:2] == ["warm", "running"]


def test_io_and_cpu_slots_are_honoured_sleeping_io_steps_run_together_beyond_the_cpu_limit(tmp_path, locations):
    names = []
    for index in range(4):
        write_step(tmp_path / "steps", f"fetch{index}", f'sleep 1; echo {index} > "$IMAGEKIT_OUT_PAGE{index}"',
                   outputs=[f"page{index}"], extra={"kind": "io"})
        names.append(f"fetch{index}")
    for index in range(2):
        write_step(tmp_path / "steps", f"crunch{index}", f'sleep 1; echo {index} > "$IMAGEKIT_OUT_SUM{index}"',
                   outputs=[f"sum{index}"])
        names.append(f"crunch{index}")
    pipeline = write_pipeline(tmp_path, "kinds", names, parallelism={"cpu": 1, "io": 3})
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 0, result.stderr
    running: dict[str, set[str]] = {"io": set(), "cpu": set()}
    peak = {"io": 0, "cpu": 0, "all": 0}
    for entry in journal_entries(locations.journal("kinds")):
        if entry["event"] != contract.Event.TRANSITION:
            continue
        kind = "io" if entry["step"].startswith("fetch") else "cpu"
        if entry["to"] == "running":
            running[kind].add(entry["step"])
        elif entry["from"] == "running":
            running[kind].discard(entry["step"])
        peak = {"io": max(peak["io"], len(running["io"])), "cpu": max(peak["cpu"], len(running["cpu"])),
                "all": max(peak["all"], len(running["io"]) + len(running["cpu"]))}
    assert peak == {"io": 3, "cpu": 1, "all": 4}  # three io steps beside the one cpu step, never more
    assert result.summary["wall_seconds"] < 5  # 4 io steps in 2 waves beside 2 cpu steps one after the other
