"""The imagekit pipelines the benchmark builds and runs, written out as ordinary step packages.

    bench-handoff        producer ─blob─▶ consumer ─sum─▶ (result)   the handoff of D bytes through shm; the
                                                                     consumer is warm (-cold: it is not)
    bench-launch20       s01 ─d01─▶ s02 ─d02─▶ … ─▶ s20               trivial steps, one after the other
                                                                     (-warm: every step but s01 warm)
    bench-idle           one step sleeping: what the runtime costs while a step works
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
from imagekit_runtime import step

result = work.produce_file(str(step.output_path("blob")), int(os.environ["BENCH_BYTES"]))
print("BENCH " + json.dumps(result), flush=True)
step.done()  # exit 0 at once, without the interpreter's teardown: the runtime commits sooner
"""

CONSUMER = """\
import time
launched = time.time()  # first thing the interpreter runs: spawn + interpreter start end here
import json, os
import work
from imagekit_runtime import step

path = step.input_path("blob")  # a warm consumer waits here until the blob is committed; a cold one passes
woke = time.time()
result = work.consume_file(str(path), int(os.environ["BENCH_BYTES"]))
result["launched"] = launched
result["woke"] = woke
with open(os.environ["IMAGEKIT_OUT_SUM"], "w") as out:
    out.write(str(result["crc"]))
print("BENCH " + json.dumps(result), flush=True)
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_handoff(root: Path, warm: bool = True) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    for name, code, inputs, outputs in (("producer", PRODUCER, [], ["blob"]), ("consumer", CONSUMER, ["blob"], ["sum"])):
        step = root / "steps" / name
        _write(step / "step.yaml", f"name: {name}\ncommand: [python3, main.py]\ninputs: {inputs}\noutputs: {outputs}\n"
               + ("warm: true\n" if warm and inputs else ""))
        _write(step / "main.py", code)
        shutil.copyfile(WORK, step / "work.py")
    _write(root / "pipeline.yaml", textwrap.dedent(f"""\
        # imagekit benchmark: hand D bytes from a producer step to a {"warm" if warm else "cold"} consumer step through shm
        name: bench-handoff{"" if warm else "-cold"}
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


def launch_name(count: int, warm: bool = False) -> str:
    return f"bench-launch{count}{'-warm' if warm else ''}"


def write_launch(root: Path, count: int = 20, stamped: bool = False, warm: bool = False) -> Path:
    """The chain of trivial steps; `stamped` steps first print when they start (`date`, for profiling).
    `warm`: every step after the first is warm, waits with imagekit-wait, and every one may wait at once."""
    shutil.rmtree(root, ignore_errors=True)
    names = launch_step_names(count)
    for index, name in enumerate(names, start=1):
        inputs = [f"d{index - 1:02d}"] if index > 1 else []
        gated = warm and index > 1
        command = ("imagekit-wait || exit 1; " if gated else "") + ("date +%s.%N; " if stamped else "") + trivial_command(index)
        command = command.replace("\\", "\\\\").replace('"', '\\"')
        _write(root / "steps" / name / "step.yaml",
               f'name: {name}\ncommand: [/bin/sh, -c, "{command}"]\ninputs: {inputs}\noutputs: [d{index:02d}]\n'
               + ("warm: true\n" if gated else ""))
    _write(root / "pipeline.yaml", textwrap.dedent(f"""\
        # imagekit benchmark: {count} trivial steps in a chain (each starts when the one before commits)
        name: {launch_name(count, warm)}
        base: {BASE}
        steps: [{", ".join(f"steps/{n}" for n in names)}]
        shm: 64Mi
        parallelism: 1
        checkpoint:
          ssd: /tmp/imagekit-bench/ssd
          pv: /tmp/imagekit-bench/pv
        shards: 1
        results: [d{count:02d}]
        """) + (f"warm_slots: {count}\n" if warm else ""))
    return root


def write_idle(root: Path, seconds: int) -> Path:
    """One step that sleeps: the runtime's CPU while a step works."""
    shutil.rmtree(root, ignore_errors=True)
    _write(root / "steps" / "sleep" / "step.yaml",
           f'name: sleep\ncommand: [/bin/sh, -c, "sleep {seconds}; : > \\"$IMAGEKIT_OUT_DONE\\""]\noutputs: [done]\n')
    _write(root / "pipeline.yaml", "name: bench-idle\nsteps: [steps/sleep]\nshm: 64Mi\nparallelism: 1\n"
           "checkpoint: {ssd: null, pv: null}\n")
    return root
