"""Outputs of many small files: checkpoint time against `cp -a` + sync and `tar | tar` + sync of the same
directory to the same disk, and the handoff from a producer of N files to its consumer (bench_checkpoint.py)."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from imagekit_core.spec.quantity import human_size
from imagekit_runtime.checkpoint.store import CheckpointStore, Tier
from imagekit_runtime.layout import RunLayout

REPO = Path(__file__).resolve().parents[1]
SHAPES = ((50_000, 1), (5_000, 64 * 1024))  # (files, bytes each)
HANDOFF_COUNTS = (1, 1_000, 50_000)
FILES_PER_DIR = 100


def make_tree(root: Path, count: int, size: int) -> None:
    content = os.urandom(size)
    for number in range(count):
        directory = root / f"d{number // FILES_PER_DIR:04}"
        if number % FILES_PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"f{number % FILES_PER_DIR:03}").write_bytes(content)


def settle(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    subprocess.run(["sync"], check=True)
    time.sleep(0.5)  # let writeback of the previous round settle


def timed_shell(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", "-c", command], check=True)
    return time.perf_counter() - started


def bench_many_files(rounds: int, disk_dir: Path) -> list[dict[str, float]]:
    rows = []
    for count, size in SHAPES:
        shm = Path(tempfile.mkdtemp(prefix="imagekit-bench-many-", dir="/dev/shm"))
        try:
            source = shm / "data"
            make_tree(source, count, size)
            layout = RunLayout(shm_dir=shm, run_dir=shm / "run", results_dir=shm / "results", ssd_dir=disk_dir,
                               pv_dir=None)
            store = CheckpointStore(layout=layout, pipeline="bench", shard_index=0, major=(), tiers=[], warnings=[])
            times: dict[str, list[float]] = {"cp": [], "tar": [], "checkpoint": [], "cp_nosync": []}
            order = list(times)
            for round_number in range(rounds):
                for label in order[round_number % 4:] + order[:round_number % 4]:
                    settle(disk_dir)
                    if label == "cp":
                        times[label].append(timed_shell(f"cp -a '{source}' '{disk_dir}/copy' && sync"))
                    elif label == "cp_nosync":  # a floor: the same copy, not made durable
                        times[label].append(timed_shell(f"cp -a '{source}' '{disk_dir}/copy'"))
                    elif label == "tar":
                        (disk_dir / "copy").mkdir()
                        times[label].append(timed_shell(
                            f"tar -C '{source}' -cf - . | tar -C '{disk_dir}/copy' -xf - && sync"))
                    else:
                        started = time.perf_counter()
                        store.write(Tier("ssd", disk_dir / "ckpt"), "step", "data", f"key-{round_number}", source,
                                    "bench")
                        times[label].append(time.perf_counter() - started)
            rows.append({"count": count, "size": size, **{k: statistics.median(v) for k, v in times.items()}})
        finally:
            shutil.rmtree(shm, ignore_errors=True)
            shutil.rmtree(disk_dir, ignore_errors=True)
    return rows


def print_many_files(rows: list[dict[str, float]], disk_dir: Path, rounds: int,
                     say: Callable[[str], None] = print) -> None:
    say(f"checkpoints of many files, /dev/shm to {disk_dir} (median of {rounds}; speed = cp time / time):")
    say(f"  {'shape':<18} {'cp -a + sync':>12} {'tar|tar + sync':>15} {'checkpoint':>11} {'vs cp':>6} "
          f"{'vs tar':>7}  {'cp -a, no sync':>14} {'vs it':>6}  (target vs cp >= 0.50)")
    for row in rows:
        shape = f"{row['count']:,} x {human_size(int(row['size']))}"
        say(f"  {shape:<18} {row['cp']:>11.2f}s {row['tar']:>14.2f}s {row['checkpoint']:>10.2f}s "
              f"{row['cp'] / row['checkpoint']:>6.2f} {row['tar'] / row['checkpoint']:>7.2f}  "
              f"{row['cp_nosync']:>13.2f}s {row['cp_nosync'] / row['checkpoint']:>6.2f}")
    say("  (sync flushes the whole filesystem, other processes' writes included; the checkpoint fsyncs its own "
          "files: `cp -a, no sync` is the copy alone, not durable)")


PRODUCER = """\
import os
out = os.environ["IMAGEKIT_OUT_MANY"]
count = int(os.environ["FILES"])
if count == 1:
    open(out, "w").write("x")
else:
    for number in range(count):
        if number % 100 == 0:
            os.makedirs(f"{out}/d{number // 100:04}")
        with open(f"{out}/d{number // 100:04}/f{number % 100:03}", "w") as handle:
            handle.write("x")
"""


def write_handoff_pipeline(root: Path, stamps: Path, count: int) -> Path:
    """make writes `count` one-byte files and stamps its end; take stamps its start (both in shell: no
    interpreter start-up inside the measured span)."""
    steps = {
        "make": ({"outputs": ["many"]}, 'python3 make.py && date +%s.%N > "$STAMPS/end"\n'),
        "take": ({"inputs": ["many"], "outputs": ["done"]},
                 'date +%s.%N > "$STAMPS/start"; : > "$IMAGEKIT_OUT_DONE"\n'),
    }
    for name, (io, script) in steps.items():
        directory = root / "steps" / name
        directory.mkdir(parents=True)
        (directory / "step.yaml").write_text(json.dumps({"name": name, "command": ["sh", "run.sh"], **io}))
        (directory / "run.sh").write_text(script)
    (root / "steps" / "make" / "make.py").write_text(PRODUCER)
    pipeline = {"name": "handoff", "steps": ["steps/make", "steps/take"], "shm": "1Gi", "parallelism": 2,
                "params": {"STAMPS": str(stamps), "FILES": str(count)}}
    (root / "pipeline.yaml").write_text(json.dumps(pipeline))
    return root / "pipeline.yaml"


def bench_handoff(rounds: int, disk_dir: Path) -> dict[int, float]:
    """Median seconds from the producer's end to the consumer's start, checkpoints on (as by default)."""
    medians = {}
    for count in HANDOFF_COUNTS:
        spans = []
        for _round in range(rounds):
            work = Path(tempfile.mkdtemp(prefix="imagekit-bench-handoff-"))
            shm = Path(tempfile.mkdtemp(prefix="imagekit-bench-handoff-", dir="/dev/shm"))
            try:
                stamps = work / "stamps"
                stamps.mkdir()
                pipeline = write_handoff_pipeline(work / "pipeline", stamps, count)
                subprocess.run([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), "--shm-dir", str(shm),
                                "--ssd", str(disk_dir / "ssd"), "--pv", str(disk_dir / "pv"),
                                "--results", str(work / "results"), "--force"],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])})
                spans.append(float((stamps / "start").read_text()) - float((stamps / "end").read_text()))
            finally:
                shutil.rmtree(work, ignore_errors=True)
                shutil.rmtree(shm, ignore_errors=True)
                shutil.rmtree(disk_dir, ignore_errors=True)
        medians[count] = statistics.median(spans)
    return medians


def print_handoff(medians: dict[int, float], rounds: int, say: Callable[[str], None] = print) -> None:
    say(f"handoff, producer's end to consumer's start, checkpoints on (median of {rounds}; target <= 50 ms "
          "at 50,000):")
    for count, seconds in medians.items():
        say(f"  {count:>7,} one-byte files  {seconds * 1000:8.1f} ms")
