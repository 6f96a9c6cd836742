"""A new image applied to a running local pod: Kruise's in-place update against a pod recreate, side by side.

On the demo pipeline (pipelines/wordfreq, one shard, with a gate that can hold `count`): v1 is built and
brought up as a local pod; v2 (only `report` changed) is applied with `imagekit pod apply`, once to a
Kruise set (InPlaceIfPossible: the image is swapped in the running pod, shm kept) and once to a plain
StatefulSet (the pod is recreated, shm lost); each once v1 is complete, and once while v1's `count`
runs. For each it prints the time from `apply` to the first step running again (from the runtime's
journal), the time until the shard is complete again, and the bytes read back from the SSD checkpoint
(the items the new run restored).

    python3 bench/bench_inplace.py [--bytes 64Mi] [--rounds 3]

Needs the Docker engine and the base image (scripts/bootstrap.sh). Everything it creates is named
imagekit-bench-<pid>-… and removed at the end; the two images are kept as build cache.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "core", REPO / "runtime", REPO / "deploy"):
    sys.path.insert(0, str(path))

from imagekit_core import contract  # noqa: E402
from imagekit_core.spec.quantity import human_size  # noqa: E402
from imagekit_deploy.emulator.engine import Engine  # noqa: E402
from imagekit_deploy.emulator.pods import PodSet  # noqa: E402
from imagekit_deploy.emulator.state import StateDir  # noqa: E402
from imagekit_deploy.emulator.status import read_journal  # noqa: E402
from imagekit_runtime.observe.journal import Entry, newest_run, run_ids  # noqa: E402
from imagekit_runtime.states import StepState  # noqa: E402
from pages import Measured  # noqa: E402

BASE = "imagekit/debian-python:bookworm"
REPOSITORY = "127.0.0.1:5000/imagekit-bench/wordfreq-inplace"
FLAVOURS = ("kruise", "statefulset")


def imagekit(*args: Any) -> str:
    command = [sys.executable, "-m", "imagekit.cli.main", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, args[:2]))} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


# `count` held while <pv>/gates/hold-count exists (as in tests/test_pod_inplace.py), for the update mid-run.
GATED_COUNT = ("name: count\n"
               "command: [sh, -c, 'while [ -e \"${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-count\" ]; "
               "do sleep 0.05; done; exec python3 main.py']\n"
               "inputs: [tokens, vocab]\noutputs: [counts]\nrequirements: requirements.txt\n")


def build_versions(work: Path) -> tuple[Path, str, str]:
    """The demo pipeline (with a gate in `count`) as v1, and as v2 with `report` changed."""
    pipeline = work / "wordfreq"
    shutil.copytree(REPO / "pipelines" / "wordfreq", pipeline, ignore=shutil.ignore_patterns("__pycache__"))
    (pipeline / "steps" / "count" / "step.yaml").write_text(GATED_COUNT)
    imagekit("build", pipeline, "--tag", f"{REPOSITORY}:v1", "--backend", "docker", "--base", BASE)
    report = pipeline / "steps" / "report" / "main.py"
    report.write_text(report.read_text().replace('        "top10": top,\n', '        "top10": top,\n        "edition": 2,\n'))
    imagekit("build", pipeline, "--tag", f"{REPOSITORY}:v2", "--backend", "docker", "--base", BASE)
    return pipeline, f"{REPOSITORY}:v1", f"{REPOSITORY}:v2"


def journal(state_dir: Path) -> list[Entry]:
    where = StateDir(state_dir)
    state = where.load()
    pods = PodSet(where, Engine())
    return read_journal(pods, pods.blueprint(state, state.ordinals[0]))


def first_running(entries: list[Entry], run: str) -> float | None:
    for entry in entries:
        if entry.get("run") == run and entry.get("event") == contract.Event.TRANSITION \
                and entry.get("to") == StepState.RUNNING:
            return float(entry["ts"])
    return None


def restored_bytes(entries: list[Entry], run: str, ssd_claim: Path) -> int:
    """Bytes of the checkpoints the run brought back from the SSD (as its plan event lists them)."""
    plan = next(e for e in entries if e.get("run") == run and e.get("event") == contract.Event.PLAN)
    total = 0
    for item, tier in (plan.get("restore") or {}).items():
        if tier != contract.Source.SSD:
            continue
        data = item.split("/", 1)[1]
        # One checkpoint of this item: v1 and v2 share its key (only report changed).
        checkpoint = next(ssd_claim.rglob(f"{data}@*"))
        manifest = json.loads((checkpoint / contract.CHECKPOINT_MANIFEST).read_text())  # the bytes it holds, as restored
        total += sum(int(entry.get("size", 0)) for entry in manifest["files"])
    return total


def wait_for(state_dir: Path, found: Any) -> Any:
    while True:
        value = found(journal(state_dir))
        if value is not None:
            return value
        time.sleep(0.05)


def count_running(entries: list[Entry]) -> bool | None:
    view = newest_run(entries)
    return True if view.steps.get("count") == StepState.RUNNING else None


def one_update(scenario: str, flavor: str, pipeline: Path, images: tuple[str, str], data_bytes: str, work: Path,
               tag: str) -> dict[str, float]:
    """v1 up; v2 applied once the shard is complete (scenario "complete") or while `count` runs ("count")."""
    name = f"imagekit-bench-{tag}-{scenario[:5]}-{flavor[:5]}"
    state_dir = work / name
    rendered = [work / f"{name}-v{n}" for n in (1, 2)]
    for image, where in zip(images, rendered, strict=True):
        imagekit("deploy", "render", pipeline, "--image", image, "--name", name, "--replicas", 1,
                 "--ssd", "local-pv", "--flavor", flavor, "-d", where)
    gate = state_dir / "claims" / f"pv-{name}-0" / "gates" / "hold-count"
    try:
        if scenario == "count":
            gate.parent.mkdir(parents=True)
            gate.touch()
        imagekit("pod", "up", rendered[0], "--state-dir", state_dir, "--param", f"WORDFREQ_BYTES={data_bytes}")
        if scenario == "count":
            wait_for(state_dir, count_running)
        else:
            imagekit("pod", "status", "--state-dir", state_dir, "--wait", "--timeout", 900)
        before = run_ids(journal(state_dir))
        applied = time.time()
        imagekit("pod", "apply", rendered[1], "--state-dir", state_dir)

        def new_run_started(entries: list[Entry]) -> tuple[str, float] | None:
            runs = [run for run in run_ids(entries) if run not in before]
            started = first_running(entries, runs[-1]) if runs else None
            return (runs[-1], started) if started is not None else None

        run, started = wait_for(state_dir, new_run_started)
        gate.unlink(missing_ok=True)
        imagekit("pod", "status", "--state-dir", state_dir, "--wait", "--timeout", 900)
        complete = time.time()
        ssd_claim = state_dir / "claims" / f"ssd-{name}-0"
        return {"first_step_s": started - applied, "complete_s": complete - applied,
                "ssd_bytes": restored_bytes(journal(state_dir), run, ssd_claim)}
    finally:
        subprocess.run([sys.executable, "-m", "imagekit.cli.main", "pod", "down", "--state-dir", str(state_dir),
                        "--grace-period", "0", "--delete-data"], capture_output=True, cwd=REPO)


def seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


SCENARIOS = {"complete": "v2 applied once v1 is complete", "count": "v2 applied while v1's count runs"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", default="64Mi", help="WORDFREQ_BYTES of the shard (default 64Mi)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/inplace.md")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    tag = str(os.getpid())
    work = Path(tempfile.mkdtemp(prefix=f"imagekit-bench-{tag}-"))
    measured: dict[tuple[str, str], list[dict[str, float]]] = {(s, f): [] for s in SCENARIOS for f in FLAVOURS}
    try:
        pipeline, *images = build_versions(work)
        for round_number in range(options.rounds):
            order = FLAVOURS if round_number % 2 == 0 else FLAVOURS[::-1]  # a shared machine: alternate
            for scenario in SCENARIOS:
                for flavor in order:
                    measured[(scenario, flavor)].append(one_update(
                        scenario, flavor, pipeline, (images[0], images[1]), options.bytes, work,
                        f"{tag}-{round_number}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say = Measured("inplace", "in place against recreate")
    say(f"wordfreq, 1 shard of {options.bytes}; v2 (report changed) applied to a local pod running v1; "
          f"medians of {options.rounds} round(s), (min-max)")
    say(f"  {'':<36} {'in place (kruise)':>20} {'recreate (statefulset)':>24}")
    for scenario, title in SCENARIOS.items():
        say(f"  {title}:")
        for label, key in (("apply -> first step running, s", "first_step_s"),
                           ("apply -> shard complete again, s", "complete_s")):
            values = [seconds([r[key] for r in measured[(scenario, f)]]) for f in FLAVOURS]
            say(f"    {label:<34} {values[0]:>20} {values[1]:>24}")
        ssd = [human_size(int(statistics.median(r["ssd_bytes"] for r in measured[(scenario, f)]))) for f in FLAVOURS]
        say(f"    {'bytes read back from the SSD':<34} {ssd[0]:>20} {ssd[1]:>24}")

    if not options.no_write:
        say.write()

if __name__ == "__main__":
    main()
