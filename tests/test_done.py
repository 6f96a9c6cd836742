"""step.done() declares a step's outputs complete: the runtime commits them at once, before the process is gone.

Real runs (the CLI, supervisord, step processes): the declaration travels through a FIFO from a step's
process to the conductor, and what matters is how it meets the process's exit and a kill -9 of the runtime.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import imagekit, last_run, start_imagekit, write_pipeline, write_step
from imagekit_core import contract

# The producer writes its blob whole, declares it complete, then does what `after` says (linger, crash, hang).
PRODUCER = """
import os, signal, time
from pathlib import Path
from imagekit_runtime import step

with step.open_output("blob") as out:
    out.write(b"x" * 4_000_000)
step.declare_done()
Path(os.environ["NOTES"], "declared").write_text(str(time.time()))
{after}
"""

READER = """
import json, os, time
from pathlib import Path
from imagekit_runtime import step

data = bytes(step.read_bytes("blob"))
Path(os.environ["NOTES"], "reader-saw").write_text(json.dumps({"size": len(data), "ok": data == b"x" * 4_000_000,
                                                               "at": time.time()}))
step.write_bytes("sum", str(len(data)).encode())
step.done()
"""


def done_pipeline(root: Path, after: str, *, outputs: tuple[str, ...] = ("blob",)) -> Path:
    notes = root / "notes"
    notes.mkdir()
    write_step(root / "steps", "producer", PRODUCER.format(after=after), shell=False,
               outputs=list(outputs))
    write_step(root / "steps", "reader", READER, shell=False, inputs=["blob"], outputs=["sum"], extra={"warm": True})
    return write_pipeline(root, "done", ["producer", "reader"], results=["sum"], params={"NOTES": str(notes)},
                          parallelism=1)


def transitions(entries: list[dict], step: str) -> list[str]:
    return [e["to"] for e in entries if e["event"] == contract.Event.TRANSITION and e["step"] == step]


def first_ts(entries: list[dict], step: str, to: str) -> float:
    return next(e["ts"] for e in entries if e["event"] == contract.Event.TRANSITION and e["step"] == step
                and e["to"] == to)


def test_the_consumer_starts_while_the_declared_producer_still_runs(tmp_path, locations):
    # The producer lingers 1.5 s after declaring (parallelism 1): its consumer has read the blob long before.
    pipeline = done_pipeline(tmp_path, "time.sleep(1.5)\nos._exit(0)")
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 0, result.stderr
    saw = json.loads((tmp_path / "notes" / "reader-saw").read_text())
    assert saw["size"] == 4_000_000 and saw["ok"], saw
    declared = float((tmp_path / "notes" / "declared").read_text())
    assert saw["at"] - declared < 1.0  # not held until the producer's exit
    entries = last_run(locations.journal("done"))
    assert first_ts(entries, "producer", "committed") <= saw["at"]
    assert (locations.results / "sum").read_text() == "4000000"
    assert not result.summary["warnings"]


def test_a_crash_after_done_keeps_the_whole_commit_with_a_warning(tmp_path, locations):
    pipeline = done_pipeline(tmp_path, "time.sleep(0.3)\nos.kill(os.getpid(), signal.SIGKILL)")
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 0, result.stderr
    saw = json.loads((tmp_path / "notes" / "reader-saw").read_text())
    assert saw["size"] == 4_000_000 and saw["ok"], saw  # what was written before done(), whole
    steps = {s["name"]: s for s in result.summary["steps"]}
    assert steps["producer"]["state"] == "retired" and steps["producer"]["attempts"] == 1
    [warning] = result.summary["warnings"]
    assert "step producer" in warning and "after declaring its outputs complete" in warning
    assert (locations.results / "sum").read_text() == "4000000"


def test_a_declaration_without_an_output_is_a_failed_attempt(tmp_path, locations):
    pipeline = done_pipeline(tmp_path, "time.sleep(0.3)", outputs=("blob", "extra"))
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 1
    assert "did not write its output 'extra'" in result.stderr
    entries = last_run(locations.journal("done"))
    assert "committed" not in transitions(entries, "producer")
    assert transitions(entries, "reader") == ["warm", "stopped"]  # it never got past its gate
    assert not (locations.data_root("done") / "committed" / "producer").exists()


def test_kill_9_of_the_runtime_between_done_and_exit_then_a_resume_gives_the_right_result(tmp_path, locations):
    hold = tmp_path / "hold"
    hold.write_text("")
    pipeline = done_pipeline(tmp_path, f"while os.path.exists({str(hold)!r}):\n    time.sleep(0.05)")
    run = start_imagekit("run", pipeline, *locations.args(), "--output", "json")
    journal = locations.journal("done")
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and "committed" in transitions(last_run(journal), "producer")):
            assert run.poll() is None and time.monotonic() < deadline, "the producer's declaration was not committed"
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGKILL)  # the producer has declared, and has not exited
        run.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    hold.unlink()
    (tmp_path / "notes" / "reader-saw").unlink(missing_ok=True)
    resumed = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert resumed.returncode == 0, resumed.stderr
    assert (locations.results / "sum").read_text() == "4000000"
    steps = {s["name"]: s for s in resumed.summary["steps"]}
    assert steps["producer"]["state"] in ("reused", "retired") and steps["producer"]["attempts"] == 0, steps
