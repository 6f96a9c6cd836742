"""Two platforms in one build against two single-platform builds, side by side in one run.

For each round, on a fresh copy of pipelines/wordfreq whose locks for both platforms are committed:
  separate   `imagekit build --push` for linux/amd64, then for linux/arm64 (each on its base, each with a
             fresh imagekit cache), each pushed to an empty registry of its own
  together   `imagekit build --platform linux/amd64,linux/arm64 --push` (a fresh imagekit cache), pushed to
             one empty registry: one index, the layers both platforms share sent once
Rounds alternate which goes first. Prints medians and the ratios together/separate of the wall time and of
the bytes uploaded.

    python3 bench/bench_platforms.py [--rounds 3] [--no-write]

Needs Docker, the amd64 base and qemu-user-static (scripts/bootstrap.sh); it makes the arm64 base
(`imagekit base --platform linux/arm64`) when it is not there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pages import Measured
from private_registry import private_registry

REPO = Path(__file__).resolve().parents[1]
BASE = "imagekit/debian-python:bookworm"
ARM64_BASE = "imagekit/debian-python:bookworm-arm64"
PORT = 5170


def imagekit(*args: str, cache: Path) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "imagekit.cli.main", *args, "-o", "json"], capture_output=True,
                            text=True, env={**os.environ, "IMAGEKIT_CACHE_DIR": str(cache)}, check=False)
    if result.returncode != 0:
        raise SystemExit(f"imagekit {' '.join(args)}: exit {result.returncode}: {result.stderr[-2000:]}")
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def uploaded(pushed: object) -> int:
    assert isinstance(pushed, dict)
    return int(pushed["uploaded_bytes"])


def separate(pipeline: Path, work: Path, number: int) -> tuple[float, int]:
    started, sent = time.perf_counter(), 0
    for offset, (platform_base, name) in enumerate(((BASE, "amd64"), (ARM64_BASE, "arm64"))):
        with private_registry(work / f"registry-{name}", PORT + 2 * number + offset) as registry:
            built = imagekit("build", str(pipeline), "--base", platform_base, "--tag", f"{registry}/wf:{name}",
                             "--push", cache=work / f"cache-{name}")
            sent += uploaded(built["pushed"])
    return time.perf_counter() - started, sent


def together(pipeline: Path, work: Path, number: int) -> tuple[float, int]:
    started = time.perf_counter()
    with private_registry(work / "registry-both", PORT + 10 + number) as registry:
        built = imagekit("build", str(pipeline), "--base", BASE, "--platform", "linux/amd64,linux/arm64",
                         "--platform-base", f"linux/arm64={ARM64_BASE}", "--tag", f"{registry}/wf:both", "--push",
                         cache=work / "cache-both")
    indexes = built["indexes"]
    assert isinstance(indexes, list)
    return time.perf_counter() - started, sum(uploaded(pushed) for pushed in indexes[0]["images"].values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/platforms.md")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "imagekit.cli.main", "base", "--platform", "linux/arm64", "--tag",
                    ARM64_BASE], check=True, capture_output=True)
    times: dict[str, list[float]] = {"separate": [], "together": []}
    sent: dict[str, list[int]] = {"separate": [], "together": []}
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-platforms-", dir="/var/tmp") as temporary:
        pipeline = Path(temporary) / "wordfreq"
        shutil.copytree(REPO / "pipelines" / "wordfreq", pipeline)
        imagekit("build", str(pipeline), "--base", ARM64_BASE, "--tag", "bench/locks:arm64",
                 cache=Path(temporary) / "cache-locks")  # both platforms' locks, as a repository commits them
        for number in range(args.rounds):
            cases = (("separate", separate), ("together", together))
            for name, case in cases if number % 2 == 0 else cases[::-1]:
                work = Path(temporary) / f"round{number}-{name}"
                seconds, bytes_sent = case(pipeline, work, number)
                times[name].append(seconds)
                sent[name].append(bytes_sent)
                shutil.rmtree(work, ignore_errors=True)
            print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), file=sys.stderr)
    median = {name: statistics.median(values) for name, values in times.items()}
    bytes_median = {name: statistics.median(values) for name, values in sent.items()}
    say = Measured("platforms", "two platforms in one build against two builds")
    say(f"wordfreq, linux/amd64 and linux/arm64 (arm64 probed under qemu), fresh imagekit caches, empty registries; "
        f"medians of {args.rounds} rounds, order alternating")
    say(f"  {'':34}{'separate':>12}{'together':>12}{'ratio':>8}")
    say(f"  {'cold build and push, s':34}{median['separate']:>12.1f}{median['together']:>12.1f}"
        f"{median['together'] / median['separate']:>8.2f}")
    say(f"  {'bytes uploaded, MiB':34}{bytes_median['separate'] / 2**20:>12.1f}{bytes_median['together'] / 2**20:>12.1f}"
        f"{bytes_median['together'] / bytes_median['separate']:>8.2f}")
    if not args.no_write:
        say.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
