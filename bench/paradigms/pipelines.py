"""The two imagekit pipelines the benchmark builds and runs, written out as ordinary step packages.

    bench-handoff   producer ─blob─▶ consumer ─sum─▶ (result)      the handoff of D bytes through shm
    bench-launch20  s01 ─d01─▶ s02 ─d02─▶ … ─▶ s20                  20 trivial steps, one after the other
"""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

WORK = Path(__file__).with_name("work.py")
BASE = "imagekit/debian-python:bookworm"

PRODUCER = """\
import json, os
import work

result = work.produce_file(os.environ["IMAGEKIT_OUT_BLOB"], int(os.environ["BENCH_BYTES"]))
print("BENCH " + json.dumps(result), flush=True)
"""

CONSUMER = """\
import time
launched = time.time()  # first thing the interpreter runs: spawn + interpreter start end here
import json, os
import work

result = work.consume_file(os.environ["IMAGEKIT_IN_BLOB"], int(os.environ["BENCH_BYTES"]))
result["launched"] = launched
with open(os.environ["IMAGEKIT_OUT_SUM"], "w") as out:
    out.write(str(result["crc"]))
print("BENCH " + json.dumps(result), flush=True)
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_handoff(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for name, code, inputs, outputs in (("producer", PRODUCER, [], ["blob"]), ("consumer", CONSUMER, ["blob"], ["sum"])):
        step = root / "steps" / name
        _write(step / "step.yaml", f"name: {name}\ncommand: [python3, main.py]\ninputs: {inputs}\noutputs: {outputs}\n")
        _write(step / "main.py", code)
        shutil.copyfile(WORK, step / "work.py")
    _write(root / "pipeline.yaml", textwrap.dedent(f"""\
        # imagekit benchmark: hand D bytes from a producer step to a consumer step through shm
        name: bench-handoff
        base: {BASE}
        steps: [steps/producer, steps/consumer]
        shm: 2Gi
        parallelism: 1
        checkpoint:
          ssd: /tmp/imagekit-bench/ssd
          pv: /tmp/imagekit-bench/pv
        shards: 1
        results: [sum]
        params:
          BENCH_BYTES: "67108864"
        """))
    return root


def launch_step_names(count: int = 20) -> list[str]:
    return [f"s{i:02d}" for i in range(1, count + 1)]


def trivial_command(index: int, directory: str = '"$IMAGEKIT_OUT_D{index:02d}"') -> str:
    """The shell command of step `index`: create its (empty) output. The same in both paradigms."""
    return f": > {directory.format(index=index)}"


def write_launch(root: Path, count: int = 20, stamped: bool = False) -> Path:
    """The chain of trivial steps; `stamped` steps first print when they start (`date`, for profiling)."""
    shutil.rmtree(root, ignore_errors=True)
    names = launch_step_names(count)
    for index, name in enumerate(names, start=1):
        inputs = [f"d{index - 1:02d}"] if index > 1 else []
        command = ("date +%s.%N; " if stamped else "") + trivial_command(index)
        command = command.replace("\\", "\\\\").replace('"', '\\"')
        _write(root / "steps" / name / "step.yaml",
               f'name: {name}\ncommand: [/bin/sh, -c, "{command}"]\ninputs: {inputs}\noutputs: [d{index:02d}]\n')
    _write(root / "pipeline.yaml", textwrap.dedent(f"""\
        # imagekit benchmark: {count} trivial steps in a chain (each starts when the one before commits)
        name: bench-launch{count}
        base: {BASE}
        steps: [{", ".join(f"steps/{n}" for n in names)}]
        shm: 64Mi
        parallelism: 1
        checkpoint:
          ssd: /tmp/imagekit-bench/ssd
          pv: /tmp/imagekit-bench/pv
        shards: 1
        results: [d{count:02d}]
        """))
    return root
