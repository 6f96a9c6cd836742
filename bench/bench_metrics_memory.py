"""What `--metrics` costs the runtime in memory: peak Pss of the conductor and its supervisord, with and
without metrics served (and scraped once), on the host, for a one-step pipeline whose step sleeps.

    python3 bench/bench_metrics_memory.py [--rounds 3]

Pss (from /proc/<pid>/smaps_rollup) splits shared pages among their sharers, as in bench_paradigms.py's
memory table; the target there is a Pss sum of at most 40 MiB.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pages import Measured

REPO = Path(__file__).resolve().parents[1]
TARGET_MIB = 40.0
STEP_SECONDS = 3


def pss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def supervisord_of(pid: int) -> int | None:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return None
    return next((c for c in children if "supervisord" in Path(f"/proc/{c}/cmdline").read_text(errors="replace")), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_pipeline(root: Path) -> Path:
    step = root / "pipeline" / "steps" / "sleep"
    step.mkdir(parents=True)
    (root / "pipeline" / "pipeline.yaml").write_text("name: pss\nsteps: [steps/sleep]\nshm: 64Mi\nresults: [out]\n")
    (step / "step.yaml").write_text("name: sleep\ncommand: [sh, run.sh]\noutputs: [out]\n")
    (step / "run.sh").write_text(f'sleep {STEP_SECONDS}; echo done > "$IMAGEKIT_OUT_OUT"\n')
    return root / "pipeline"


def one_run(root: Path, metrics: bool) -> tuple[float, float]:
    """Peak (conductor Pss, supervisord Pss) of one run, sampled every 20 ms."""
    shm = Path("/dev/shm") / f"imagekit-bench-pss-{os.getpid()}"
    port = free_port()
    args = [sys.executable, "-m", "imagekit_runtime", "run", str(write_pipeline(root)), "--shm-dir", str(shm),
            "--ssd", str(root / "ssd"), "--pv", str(root / "pv"), "--results", str(root / "results")]
    args += ["--metrics", f"127.0.0.1:{port}"] if metrics else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])}
    runtime = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, scraped = (0.0, 0.0), not metrics
    try:
        while runtime.poll() is None:
            supervisord = supervisord_of(runtime.pid)
            if not scraped and supervisord is not None:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                    scraped = True
                except OSError:
                    pass
            sample = (pss_mib(runtime.pid), pss_mib(supervisord) if supervisord else 0.0)
            if sum(sample) > sum(peak):
                peak = sample
            time.sleep(0.02)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    if runtime.returncode != 0 or not scraped:
        raise SystemExit(f"the run failed (exit {runtime.returncode}, scraped {scraped})")
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/metrics.md")
    args = parser.parse_args()
    rounds = args.rounds
    say = Measured("metrics", "the runtime's memory with and without --metrics")
    say("| runs | conductor Pss | supervisord Pss | Pss sum (MiB, median of peaks) |")
    say("| --- | --- | --- | --- |")
    sums = {}
    for metrics in (False, True):
        peaks = []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as work:
                peaks.append(one_run(Path(work), metrics))
        conductor, supervisord = (statistics.median(p[i] for p in peaks) for i in (0, 1))
        sums[metrics] = statistics.median(sum(p) for p in peaks)
        label = "with --metrics, scraped" if metrics else "without --metrics"
        say(f"| {label} | {conductor:.1f} | {supervisord:.1f} | {sums[metrics]:.1f} |")
    verdict = "met" if sums[True] <= TARGET_MIB else "missed"
    say(f"\n--metrics adds {sums[True] - sums[False]:+.1f} MiB; Pss sum {sums[True]:.1f} MiB "
          f"(target <= {TARGET_MIB:g}): {verdict}")
    if not args.no_write:
        say.write()
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
