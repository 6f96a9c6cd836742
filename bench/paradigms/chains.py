"""The runtime on the host, without containers: what a step costs as chains grow, and its CPU while a step works.

scaling   chains of 20, 100 and 200 trivial steps (`pipelines.write_launch`), cold: per step, the run's
          wall time divided by the steps, and the median time from one step's start to the next's
idle      one step sleeping N seconds; CPU-seconds of the conductor and supervisord per second of the
          window while the step sleeps (from /proc/<pid>/stat, after both have started, before it ends)
stamped   a chain whose steps print when they start: the median time of each phase between two steps
          (from the journal's transitions and those stamps)
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from imagekit_core import contract
from imagekit_runtime.observe import journal as run_journal
from paradigms import pipelines
from paradigms.engine import BenchError, log
from paradigms.procmem import children, cmdline, cpu_seconds
from paradigms.readings import read_journal, transition_ts

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = HERE.parent / "out"
SCALING_STEPS = (20, 100, 200)


def _run_runtime(pipeline: Path, run: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), "--shm-dir", str(run / "shm"),
               "--ssd", str(run / "ssd"), "--pv", str(run / "pv"), "--results", str(run / "results"),
               "--no-checkpoints", "--output", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])})


def chain_on_host(resources, count: int, warm: bool = False) -> dict:
    pipeline = pipelines.write_launch(OUT / "pipelines" / f"chain{count}{'-warm' if warm else ''}", count, warm=warm)
    run = resources.tempdir(f"chain{count}")
    process = _run_runtime(pipeline, run)
    stdout, stderr = process.communicate(timeout=900)
    if process.returncode != 0:
        raise BenchError(f"the {count}-step chain exited {process.returncode}: {stderr[-1500:]}")
    summary = json.loads(stdout)
    journal = list(run_journal.read_journal(run / "shm" / pipelines.launch_name(count, warm) /
                                            contract.shard_dir_name(0) / contract.RUN_DIR_NAME / contract.JOURNAL_FILE))
    names = pipelines.launch_step_names(count)
    running = [run_journal.transition_time(journal, name, "running") for name in names]
    gaps = [b - a for a, b in zip(running, running[1:], strict=False) if a is not None and b is not None]
    return {"steps": count, "warm": warm, "runtime": summary["wall_seconds"],
            "per_step": summary["wall_seconds"] / count, "step_to_step": statistics.median(gaps),
            "first_step_after": (running[0] or 0.0) - journal[0]["ts"]}


def scaling(resources, counts: tuple[int, ...] = SCALING_STEPS, rounds: int = 1) -> list[dict]:
    results = []
    for round_number in range(rounds):
        for count in counts:
            result = chain_on_host(resources, count)
            result["round"] = round_number
            results.append(result)
            log(f"bench: round {round_number + 1}/{rounds} chain of {count:>3} steps on host: {result['runtime']:6.2f} s, "
                f"{result['per_step'] * 1000:5.1f} ms per step ({result['step_to_step'] * 1000:5.1f} ms step to step)")
    return results


def idle_cpu(resources, seconds: int = 10) -> dict:
    """Conductor + supervisord CPU while the one step of a run sleeps `seconds` seconds."""
    pipeline = pipelines.write_idle(OUT / "pipelines" / "idle", seconds)
    run = resources.tempdir("idle")
    process = _run_runtime(pipeline, run)
    try:
        deadline = time.monotonic() + 30
        supervisord = None
        while supervisord is None and time.monotonic() < deadline:
            supervisord = next((pid for pid in children(process.pid) if "supervisord" in cmdline(pid)), None)
            time.sleep(0.05)
        if supervisord is None:
            raise BenchError("the idle run's supervisord never appeared")
        time.sleep(1.0)  # both have started, the step is sleeping
        before = (cpu_seconds(process.pid) or 0.0, cpu_seconds(supervisord) or 0.0)
        started = time.monotonic()
        time.sleep(max(1.0, seconds - 2.5))
        after = (cpu_seconds(process.pid) or 0.0, cpu_seconds(supervisord) or 0.0)
        window = time.monotonic() - started
    finally:
        process.communicate(timeout=60 + seconds)
    result = {"seconds": window, "conductor": after[0] - before[0], "supervisord": after[1] - before[1],
              "clock_tick": 1 / os.sysconf("SC_CLK_TCK")}
    result["per_run_second"] = (result["conductor"] + result["supervisord"]) / window
    log(f"bench: one step sleeping {seconds} s: conductor {result['conductor']:.2f} + supervisord "
        f"{result['supervisord']:.2f} CPU-s in {window:.1f} s = {100 * result['per_run_second']:.2f} % of one core")
    return result


def stamped_phases(resources, steps: int) -> dict:
    """Median per-step phases of a chain of steps that print when they start: scheduling, spawning, the
    exit being seen, the commit."""
    root = pipelines.write_launch(OUT / "pipelines" / f"launch{steps}-stamped", steps, stamped=True)
    run = resources.tempdir("stamped")
    subprocess.run([sys.executable, "-m", "imagekit_runtime", "run", str(root), "--shm-dir", str(run / "shm"),
                    "--ssd", str(run / "ssd"), "--pv", str(run / "pv"), "--results", str(run / "results"),
                    "--no-checkpoints"], check=True, capture_output=True, timeout=300,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])})
    base = run / "shm" / f"bench-launch{steps}" / contract.shard_dir_name(0) / contract.RUN_DIR_NAME
    journal = read_journal(base / contract.JOURNAL_FILE)
    names = pipelines.launch_step_names(steps)
    phases: dict[str, list[float]] = {}
    for previous, name in itertools.pairwise(names):
        began = float((base / contract.LOGS_DIR / f"{name}.log").read_text().split()[0])
        for label, value in (
            ("schedule: previous committed → running",
             transition_ts(journal, name, "running") - transition_ts(journal, previous, "committed")),
            ("spawn: running → step's first command", began - transition_ts(journal, name, "running")),
            ("exit seen: step's first command → committing", transition_ts(journal, name, "committing") - began),
            ("commit: committing → committed", transition_ts(journal, name, "committed") - transition_ts(journal, name, "committing")),
        ):
            phases.setdefault(label, []).append(value)
    shutil.rmtree(run, ignore_errors=True)
    return {label: statistics.median(values) for label, values in phases.items()}
