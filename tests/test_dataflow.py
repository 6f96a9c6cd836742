"""Steps start when their inputs are committed, at most `parallelism` at once; fan-in waits for every input."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from conftest import imagekit, journal_entries, start_imagekit, write_pipeline, write_step
from imagekit_core import contract

TRACE = """
echo "start $(date +%s.%N)" >> "$TRACE_DIR/{name}"
sleep {sleep}
{body}
echo "end $(date +%s.%N)" >> "$TRACE_DIR/{name}"
"""


def traced_step(root, name, sleep, body, **kwargs):
    return write_step(root / "steps", name, TRACE.format(name=name, sleep=sleep, body=body), **kwargs)


def diamond(root, parallelism: int, trace_dir):
    """a ─┬─ b ─┬─ d
          └─ c ─┘      (c is slower than b)"""
    traced_step(root, "a", 0.2, 'echo seed > "$IMAGEKIT_OUT_SEED"', outputs=["seed"])
    traced_step(root, "b", 0.6, 'cat "$IMAGEKIT_IN_SEED" > "$IMAGEKIT_OUT_LEFT"; echo b >> "$IMAGEKIT_OUT_LEFT"',
                inputs=["seed"], outputs=["left"])
    traced_step(root, "c", 1.2, 'cat "$IMAGEKIT_IN_SEED" > "$IMAGEKIT_OUT_RIGHT"; echo c >> "$IMAGEKIT_OUT_RIGHT"',
                inputs=["seed"], outputs=["right"])
    traced_step(root, "d", 0.1, 'cat "$IMAGEKIT_IN_LEFT" "$IMAGEKIT_IN_RIGHT" > "$IMAGEKIT_OUT_JOINED"',
                inputs=["left", "right"], outputs=["joined"])
    return write_pipeline(root, "diamond", ["a", "b", "c", "d"], parallelism=parallelism, results=["joined"],
                          params={"TRACE_DIR": str(trace_dir)})


def spans(trace_dir):
    result = {}
    for path in trace_dir.iterdir():
        marks = dict(line.split() for line in path.read_text().splitlines())
        result[path.name] = (float(marks["start"]), float(marks["end"]))
    return result


@pytest.mark.parametrize("parallelism", [1, 2])
def test_order_parallelism_and_fan_in(tmp_path, locations, parallelism):
    trace_dir = tmp_path / "trace"
    trace_dir.mkdir()
    pipeline = diamond(tmp_path, parallelism, trace_dir)
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert (locations.results / "joined").read_text() == "seed\nb\nseed\nc\n"
    t = spans(trace_dir)
    # Dataflow order: every consumer starts after its producers ended.
    assert t["b"][0] >= t["a"][1] and t["c"][0] >= t["a"][1]
    # Fan-in: d waits for both b and the slower c.
    assert t["d"][0] >= t["b"][1] and t["d"][0] >= t["c"][1]
    overlap = min(t["b"][1], t["c"][1]) - max(t["b"][0], t["c"][0])
    if parallelism == 2:
        assert overlap > 0.4, t  # b and c ran side by side
    else:
        assert overlap <= 0, t  # never two at once
    # The journal agrees: never more than `parallelism` steps running.
    running, peak = set(), 0
    for entry in journal_entries(locations.journal("diamond")):
        if entry["event"] != contract.Event.TRANSITION:
            continue
        if entry["to"] == "running":
            running.add(entry["step"])
        elif entry["from"] == "running":
            running.discard(entry["step"])
        peak = max(peak, len(running))
    assert peak == parallelism


def test_supervisorctl_shows_every_step_during_a_run(tmp_path, locations):
    write_step(tmp_path / "steps", "slow", 'sleep 3; echo x > "$IMAGEKIT_OUT_X"', outputs=["x"])
    write_step(tmp_path / "steps", "after", 'cp "$IMAGEKIT_IN_X" "$IMAGEKIT_OUT_Y"', inputs=["x"], outputs=["y"])
    pipeline = write_pipeline(tmp_path, "watched", ["slow", "after"], results=["y"])
    runner = start_imagekit("run", pipeline, *locations.args())
    conf = locations.data_root("watched") / contract.RUN_DIR_NAME / contract.SUPERVISOR_CONF
    status = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if conf.exists():
            status = subprocess.run(["supervisorctl", "-c", str(conf), "status"], capture_output=True, text=True).stdout
            if "RUNNING" in status:
                break
        time.sleep(0.1)
    runner.communicate(timeout=60)
    assert runner.returncode == 0
    lines = {line.split()[0]: line.split()[1] for line in status.splitlines() if line.strip()}
    assert lines.get("slow") == "RUNNING", status
    assert lines.get("after") == "STOPPED", status  # configured, not started: its input is not committed yet


def test_shell_step_sees_the_contract_environment(tmp_path, locations):
    write_step(tmp_path / "steps", "env", """
        {
          echo "in=${IMAGEKIT_IN_SEED:-unset}"
          echo "shard=$IMAGEKIT_SHARD_INDEX/$IMAGEKIT_SHARD_COUNT"
          echo "run_dir=$IMAGEKIT_RUN_DIR"
          echo "param=$GREETING"
        } > "$IMAGEKIT_OUT_ENV-DUMP"
        mkdir "$IMAGEKIT_OUT_DIR_OUT" && echo inside > "$IMAGEKIT_OUT_DIR_OUT/file"
        """, outputs=["env-dump", "dir-out"])
    # data names with '-' become '_' in variables
    step_yaml = tmp_path / "steps" / "env" / "run.sh"
    step_yaml.write_text(step_yaml.read_text().replace("$IMAGEKIT_OUT_ENV-DUMP", "$IMAGEKIT_OUT_ENV_DUMP"))
    pipeline = write_pipeline(tmp_path, "envcheck", ["env"], results=["env-dump", "dir-out"], shards=3,
                              params={"GREETING": "hello world"})
    result = imagekit("run", pipeline, *locations.args(), "--shard-index", "2")
    assert result.returncode == 0, result.stderr
    dump = (locations.results / "env-dump").read_text().splitlines()
    assert dump[0] == "in=unset"
    assert dump[1] == "shard=2/3"
    assert dump[2] == f"run_dir={locations.data_root('envcheck', 2) / 'run'}"
    assert dump[3] == "param=hello world"
    assert (locations.results / "dir-out" / "file").read_text() == "inside\n"


def test_python_helper_reads_zero_copy_and_writes_atomically(tmp_path, locations):
    # Steps see only their own environment: numpy is a requirement of each (one venv, cached, for both).
    # The first run installs it from the index (seconds); later ones reuse the venv.
    numpy_pin = "numpy==2.1.3\n"
    write_step(tmp_path / "steps", "produce", """
        from imagekit_runtime import step
        with step.open_output("numbers", "wb") as out:
            out.write(bytes(range(256)) * 1024)
        folder = step.output_dir("folder")
        (folder / "part-0").write_text("zero")
        import numpy
        step.write_array("matrix", numpy.arange(12, dtype=numpy.int32).reshape(3, 4))
        """, outputs=["numbers", "folder", "matrix"], shell=False, requirements=numpy_pin)
    write_step(tmp_path / "steps", "consume", """
        import mmap, json
        from imagekit_runtime import step
        data = step.read_bytes("numbers")
        assert isinstance(data, mmap.mmap)  # a view of shared memory, not a copy
        folder = step.input_path("folder")
        import numpy
        matrix = step.read_array("matrix")
        assert isinstance(matrix, numpy.memmap) and not matrix.flags.writeable
        step.write_bytes("summary", json.dumps({"len": len(data), "sum": sum(data[:256]),
                                                "part": (folder / "part-0").read_text(),
                                                "shard": step.shard_index(),
                                                "matrix": int(matrix[2].sum())}).encode())
        """, inputs=["numbers", "folder", "matrix"], outputs=["summary"], shell=False, requirements=numpy_pin)
    pipeline = write_pipeline(tmp_path, "helper", ["produce", "consume"], results=["summary"])
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 0, result.stderr
    assert json.loads((locations.results / "summary").read_text()) == {
        "len": 256 * 1024, "sum": sum(range(256)), "part": "zero", "shard": 0, "matrix": 8 + 9 + 10 + 11}
