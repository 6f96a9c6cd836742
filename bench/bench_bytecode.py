"""Step start with and without bytecode in the image, side by side, and what the bytecode costs in bytes.

pipelines/wordfreq is built twice, as it is and with --no-bytecode, and pushed to the local registry. In one
container of each image, a step that imports numpy and the step helper, as `tokenize` does, is started again
and again the way the runtime starts it (PYTHONDONTWRITEBYTECODE=1: nothing it compiles is kept), and the
time from its start to its first line of output is taken; the two images take turns. Then:
  first line, with bytecode / without     target <= 0.5
  bytes the deps and code layers add (uncompressed, and compressed as a cold pull fetches them)

    python3 bench/bench_bytecode.py [--starts 15] [--registry 127.0.0.1:5000] [--base imagekit/debian-python:bookworm]
                                    [--no-write]
Needs what scripts/bootstrap.sh starts (Docker, the registry, the base image).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from pages import Measured

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "pipelines" / "wordfreq"
STEP = "tokenize"
# What the step's first lines do (pipelines/wordfreq/steps/tokenize/main.py), then its first line of output.
FIRST_LINE = "import numpy\nfrom imagekit_runtime import step\nprint('first line', flush=True)\n"
DRIVER = """\
import json, os, subprocess, sys, time
env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
           PYTHONPATH="/opt/imagekit/deps/{step}:/opt/imagekit/runtime")
times = []
for _ in range({starts}):
    started = time.perf_counter()
    process = subprocess.Popen(["python3", "-c", {first_line!r}], stdout=subprocess.PIPE, env=env)
    process.stdout.readline()
    times.append(time.perf_counter() - started)
    process.wait()
print(json.dumps(times))
"""


def imagekit(*args: str) -> dict[str, object]:
    result = subprocess.run([sys.executable, "-m", "imagekit.cli.main", *args, "-o", "json"], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"imagekit {' '.join(args)}: exit {result.returncode}: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def starts(image: str, count: int) -> list[float]:
    """Seconds from each start of the step to its first line, in one container of image."""
    script = DRIVER.format(step=STEP, starts=count, first_line=FIRST_LINE)
    result = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", image,
                             "-c", script], capture_output=True, text=True, check=True)
    return [float(value) for value in json.loads(result.stdout.strip().splitlines()[-1])]


def layer_bytes(built: dict[str, object]) -> tuple[int, int]:
    """Uncompressed bytes of the deps and code layers, and compressed bytes of every layer as pushed."""
    layers = built["layers"]
    assert isinstance(layers, list)
    uncompressed = sum(int(layer["size"] or 0) for layer in layers if layer["kind"] in ("deps", "code"))
    pushed = built["pushed"]
    assert isinstance(pushed, dict)
    return uncompressed, int(pushed["total_bytes"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=15, help="starts of the step per image and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base", default="imagekit/debian-python:bookworm")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/build.md")
    args = parser.parse_args()
    tag = f"{args.registry}/imagekit-bench/bytecode-{os.getpid()}"
    images = {
        "with": imagekit("build", str(EXAMPLE), "--base", args.base, "--tag", f"{tag}:with", "--push"),
        "without": imagekit("build", str(EXAMPLE), "--base", args.base, "--tag", f"{tag}:without", "--push",
                            "--no-bytecode"),
    }
    times: dict[str, list[float]] = {"with": [], "without": []}
    try:
        for round_number in range(args.rounds):
            order = ("with", "without") if round_number % 2 == 0 else ("without", "with")
            for variant in order:
                times[variant] += starts(f"{tag}:{variant}", args.starts)
    finally:
        subprocess.run(["docker", "rmi", f"{tag}:with", f"{tag}:without"], capture_output=True, check=False)
    median = {variant: statistics.median(values) for variant, values in times.items()}
    sizes = {variant: layer_bytes(built) for variant, built in images.items()}
    say = Measured("build", "bytecode")
    say(f"step start to its first line (import numpy, the step helper; PYTHONDONTWRITEBYTECODE=1), "
        f"{args.rounds} rounds x {args.starts} starts per image, images alternating; median (min-max), ms:")
    for variant in ("with", "without"):
        values = times[variant]
        say(f"  {variant + ' bytecode':<18} {median[variant] * 1000:7.1f}  ({min(values) * 1000:.1f}-"
            f"{max(values) * 1000:.1f})")
    say(f"  with / without     {median['with'] / median['without']:7.2f}   (target <= 0.50)")
    added_raw = sizes["with"][0] - sizes["without"][0]
    added_pull = sizes["with"][1] - sizes["without"][1]
    say(f"bytecode adds {added_raw / 2**20:.1f} MiB to the deps and code layers ({sizes['without'][0] / 2**20:.1f} "
        f"MiB without, +{100 * added_raw / sizes['without'][0]:.0f} %), and {added_pull / 2**20:.1f} MiB to a cold "
        f"pull of the image ({sizes['without'][1] / 2**20:.1f} MiB compressed without, "
        f"+{100 * added_pull / sizes['without'][1]:.0f} %)")
    if not args.no_write:
        say.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
