"""A small pipeline whose steps can be held at a gate, and failure injection at the four failure levels of docs/contract.md."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import Locations, journal_entries, started_steps, write_pipeline, write_step
from imagekit_core import contract
from imagekit_runtime.states import StepState

# Each step waits while $GATE_DIR/hold-<step> exists, so a test can stop the pipeline at a known point.
GATE = 'while [ -e "$GATE_DIR/hold-$IMAGEKIT_STEP" ]; do sleep 0.02; done\n'

#   gen ─┬─ square ─┬─ total ── final
#        └─ evens  ─┘
STEPS = {
    "gen": ({"outputs": ["numbers"]}, 'seq 1 "$COUNT" > "$IMAGEKIT_OUT_NUMBERS"'),
    "square": ({"inputs": ["numbers"], "outputs": ["squares"]},
               'awk \'{ print $1 * $1 }\' "$IMAGEKIT_IN_NUMBERS" > "$IMAGEKIT_OUT_SQUARES"'),
    "evens": ({"inputs": ["numbers"], "outputs": ["evens"]},
              'awk \'$1 % 2 == 0\' "$IMAGEKIT_IN_NUMBERS" > "$IMAGEKIT_OUT_EVENS"'),
    "total": ({"inputs": ["squares", "evens"], "outputs": ["total"]},
              '{ awk \'{ s += $1 } END { printf "%.0f\\n", s }\' "$IMAGEKIT_IN_SQUARES"; wc -l < "$IMAGEKIT_IN_EVENS"; }'
              ' > "$IMAGEKIT_OUT_TOTAL"'),
    "final": ({"inputs": ["total"], "outputs": ["final"]},
              'mkdir "$IMAGEKIT_OUT_FINAL" && cp "$IMAGEKIT_IN_TOTAL" "$IMAGEKIT_OUT_FINAL/total" '
              '&& echo "shard $IMAGEKIT_SHARD_INDEX" > "$IMAGEKIT_OUT_FINAL/shard"'),
}
ORDER = ["gen", "square", "evens", "total", "final"]
LEVELS = contract.FAILURE_LEVELS


def make_chain(root: Path, gate_dir: Path, count: int = 20000) -> Path:
    for name, (io, body) in STEPS.items():
        write_step(root / "steps", name, GATE + body + "\n", inputs=io.get("inputs", ()), outputs=io["outputs"])
    gate_dir.mkdir(exist_ok=True)
    return write_pipeline(root, "chain", ORDER, parallelism=2, results=["final"],
                          checkpoint={"major": ["squares", "total"]},
                          params={"GATE_DIR": str(gate_dir), "COUNT": str(count)})


def expected_final(count: int = 20000) -> dict[str, str]:
    return {"total": f"{sum(i * i for i in range(1, count + 1))}\n{count // 2}\n", "shard": "shard 0\n"}


def read_final(locations: Locations) -> dict[str, str]:
    final = locations.results / "final"
    return {path.name: path.read_text() for path in sorted(final.iterdir())}


def runtime_command(pipeline: Path, locations: Locations, *extra: str) -> list[str]:
    return [sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), *locations.args(), *extra]


def run_runtime(pipeline: Path, locations: Locations, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(runtime_command(pipeline, locations, *extra), capture_output=True, text=True,
                          timeout=timeout)


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        stack.extend(children.get(current, []))
    return tree


def kill_tree(pid: int) -> None:
    """kill -9 of a whole runtime: conductor, supervisord and steps, frozen first so none reacts."""
    tree = descendants(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGSTOP)
    tree = sorted(set(tree + [p for member in tree for p in descendants(member)]))
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def step_pid(locations: Locations, pipeline_name: str, step: str) -> int | None:
    conf = locations.data_root(pipeline_name) / contract.RUN_DIR_NAME / contract.SUPERVISOR_CONF
    out = subprocess.run(["supervisorctl", "-c", str(conf), "pid", step], capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() and int(out) > 0 else None


@dataclass
class Durability:
    """What the killed runs had made safe, per level, read from their journals."""
    committed: set[str]
    on_ssd: set[tuple[str, str]]
    on_pv: set[tuple[str, str]]


def durability(journal: Path) -> Durability:
    committed: set[str] = set()
    ssd: set[tuple[str, str]] = set()
    pv: set[tuple[str, str]] = set()
    if journal.exists():
        for entry in journal_entries(journal):
            if entry["event"] == contract.Event.TRANSITION and entry["to"] == StepState.COMMITTED:
                committed.add(entry["step"])
            elif entry["event"] == contract.Event.CHECKPOINTED:
                (ssd if entry["tier"] == "ssd" else pv).add((entry["step"], entry["data"]))
    return Durability(committed, ssd, pv)


def apply_level(level: str, runner: subprocess.Popen, locations: Locations, pipeline_name: str,
                step: str | None = None) -> None:
    """Inject one failure (a level of docs/contract.md) into a running runtime."""
    if level == contract.FailureLevel.PROCESS:
        pid = step_pid(locations, pipeline_name, step) if step else None
        if pid is None:  # nothing running: the nearest thing is the container level
            kill_tree(runner.pid)
        else:
            os.kill(pid, signal.SIGKILL)
        runner.wait(timeout=60)
        return
    kill_tree(runner.pid)
    runner.wait(timeout=60)
    if level in (contract.FailureLevel.POD, contract.FailureLevel.NODE):
        shutil.rmtree(locations.shm.resolve() / pipeline_name, ignore_errors=True)
    if level == contract.FailureLevel.NODE:
        shutil.rmtree(locations.ssd, ignore_errors=True)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def running(journal: Path, step: str) -> bool:
    return journal.exists() and step in started_steps(journal)


def checkpointed(journal: Path, step: str, data: str, tier: str) -> bool:
    d = durability(journal)
    return (step, data) in (d.on_ssd if tier == "ssd" else d.on_pv)
