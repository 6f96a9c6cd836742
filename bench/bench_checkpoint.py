"""Checkpoint throughput against a plain copy of the same bytes to the same disk, and a pipeline's wall time
with checkpoints on and off; checkpoints of many small files against `cp -a` + sync and `tar | tar` + sync;
the handoff from a producer of N files to its consumer. Side by side in one run; medians of several rounds.

    python3 bench/bench_checkpoint.py [--size-mib 512] [--rounds 5] [--many-rounds 3] [--handoff-rounds 3]
                                      [--only big,pipeline,many,handoff] [--disk-dir /var/tmp/imagekit-bench]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime"))
sys.path.insert(0, str(REPO / "core"))

from imagekit_runtime.checkpoint.store import CheckpointStore, Tier  # noqa: E402
from imagekit_runtime.layout import RunLayout  # noqa: E402
from many_files import bench_handoff, bench_many_files, print_handoff, print_many_files  # noqa: E402
from pages import Measured  # noqa: E402


def plain_copy(source: Path, destination: Path) -> None:
    """What a user would do by hand: copy the file and make it durable."""
    shutil.copyfile(source, destination)
    with open(destination, "rb+") as handle:
        os.fsync(handle.fileno())


def drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def bench_throughput(size_mib: int, rounds: int, disk_dir: Path) -> dict[str, float]:
    shm = Path(tempfile.mkdtemp(prefix="imagekit-bench-", dir="/dev/shm"))
    try:
        source = shm / "data"
        block = os.urandom(1 << 20)
        with open(source, "wb") as out:
            for _ in range(size_mib):
                out.write(block)
        layout = RunLayout(shm_dir=shm, run_dir=shm / "run", results_dir=shm / "results", ssd_dir=disk_dir, pv_dir=None)
        store = CheckpointStore(layout=layout, pipeline="bench", shard_index=0, major=(), tiers=[], warnings=[])
        tier = Tier("ssd", disk_dir / "ckpt")
        plain, checkpoint = [], []
        for round_number in range(rounds):
            for label in ("plain", "checkpoint") if round_number % 2 == 0 else ("checkpoint", "plain"):
                drop(disk_dir)
                disk_dir.mkdir(parents=True)
                subprocess.run(["sync"], check=True)
                time.sleep(0.5)  # let writeback of the previous round settle
                started = time.perf_counter()
                if label == "plain":
                    plain_copy(source, disk_dir / "copy")
                    plain.append(time.perf_counter() - started)
                else:
                    store.write(tier, "step", "data", f"key-{round_number}", source, "bench")
                    checkpoint.append(time.perf_counter() - started)
        size = size_mib * (1 << 20)
        return {
            "plain_mib_s": size / statistics.median(plain) / (1 << 20),
            "checkpoint_mib_s": size / statistics.median(checkpoint) / (1 << 20),
            "paired_ratio": statistics.median(p / c for p, c in zip(plain, checkpoint, strict=True)),
        }
    finally:
        drop(shm)
        drop(disk_dir)


def bench_pipeline(rounds: int, corpus: str, disk_dir: Path) -> dict[str, float]:
    timings: dict[str, list[float]] = {"off": [], "on": []}
    shm = Path(tempfile.mkdtemp(prefix="imagekit-bench-", dir="/dev/shm"))
    try:
        for round_number in range(rounds):
            for mode in ("off", "on") if round_number % 2 == 0 else ("on", "off"):
                drop(disk_dir)
                command = [sys.executable, "-m", "imagekit_runtime", "run", str(REPO / "pipelines" / "wordfreq"),
                           "--shm-dir", str(shm), "--ssd", str(disk_dir / "ssd"), "--pv", str(disk_dir / "pv"),
                           "--results", str(disk_dir / "results"), "--param", f"WORDFREQ_BYTES={corpus}", "--force"]
                if mode == "off":
                    command.append("--no-checkpoints")
                started = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])})
                timings[mode].append(time.perf_counter() - started)
        return {mode: statistics.median(values) for mode, values in timings.items()}
    finally:
        drop(shm)
        drop(disk_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", default="64Mi", help="wordfreq corpus per run for the pipeline comparison")
    parser.add_argument("--disk-dir", type=Path, default=Path("/var/tmp/imagekit-bench"))
    parser.add_argument("--many-rounds", type=int, default=3, help="rounds of each many-files shape")
    parser.add_argument("--handoff-rounds", type=int, default=3, help="rounds of each handoff file count")
    parser.add_argument("--only", default="big,pipeline,many,handoff", help="which parts to run, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/checkpoints.md")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    written: list[Measured] = []
    if "many" in parts:
        written.append(say := Measured("checkpoints", "many files"))
        print_many_files(bench_many_files(args.many_rounds, args.disk_dir), args.disk_dir, args.many_rounds, say)
    if "handoff" in parts:
        written.append(say := Measured("checkpoints", "handoff"))
        print_handoff(bench_handoff(args.handoff_rounds, args.disk_dir), args.handoff_rounds, say)
    if "big" in parts:
        written.append(say := Measured("checkpoints", "throughput"))
        print_big(args, bench_throughput(args.size_mib, args.rounds, args.disk_dir), say)
    if "pipeline" in parts:
        written.append(say := Measured("checkpoints", "pipeline"))
        print_pipeline(args, bench_pipeline(args.rounds, args.corpus, args.disk_dir), say)
    for part in written if not args.no_write else []:
        part.write()


def print_big(args: argparse.Namespace, throughput: dict[str, float], say: Measured) -> None:
    ratio = throughput["checkpoint_mib_s"] / throughput["plain_mib_s"]
    say(f"checkpoint throughput, {args.size_mib} MiB from /dev/shm to {args.disk_dir} (median of {args.rounds}):")
    say(f"  plain copy + fsync        {throughput['plain_mib_s']:8.0f} MiB/s")
    say(f"  checkpoint (sha256, fsync, manifest, rename) {throughput['checkpoint_mib_s']:8.0f} MiB/s")
    say(f"  ratio checkpoint / plain  {ratio:8.2f}   (target >= 0.85)")
    say(f"  median of per-round ratios {throughput['paired_ratio']:7.2f}")


def print_pipeline(args: argparse.Namespace, pipeline: dict[str, float], say: Measured) -> None:
    say(f"wordfreq, {args.corpus} corpus (median of {args.rounds}):")
    say(f"  checkpoints off           {pipeline['off']:8.2f} s")
    say(f"  checkpoints on            {pipeline['on']:8.2f} s")
    say(f"  ratio on / off            {pipeline['on'] / pipeline['off']:8.2f}")


if __name__ == "__main__":
    main()
