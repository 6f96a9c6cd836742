"""Kill the pipeline at random moments, at every failure level, and check every resume.

Seeded, so a failure reproduces: IMAGEKIT_CHAOS_SEED picks the seed, IMAGEKIT_CHAOS_ROUNDS the rounds per level.
Each round: start a run, kill it at a random moment at the level under test, resume, and check that
  - the final output equals a clean run's, and
  - the resume re-ran no step whose outputs had already survived at that level (bounded redo).
"""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
import time

import pytest

from checkpoint_support import (
    LEVELS,
    ORDER,
    STEPS,
    durability,
    kill_tree,
    make_chain,
    read_final,
    run_runtime,
    runtime_command,
)
from conftest import Locations, started_steps
from imagekit_core import contract

# slow: about 11 s per level, 45 s in all, plus the many-file kills (~1 min): outside `-m "not slow"`
pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("IMAGEKIT_CHAOS_ROUNDS", "20"))
SEED = int(os.environ.get("IMAGEKIT_CHAOS_SEED", "20261126"))
OUTPUTS = {name: io["outputs"] for name, (io, _body) in STEPS.items()}


def fresh_locations(root) -> Locations:
    locations = Locations(root)
    shm_root = f"/dev/shm/imagekit-chaos-{os.getpid()}-{root.name}"
    os.makedirs(shm_root, exist_ok=True)
    root.mkdir(parents=True)
    (root / "shm").symlink_to(shm_root, target_is_directory=True)
    return locations


def clean_run(pipeline, tmp_path) -> tuple[Locations, float]:
    """The reference: the pipeline run once without faults; its locations and how long it took."""
    clean = fresh_locations(tmp_path / "clean")
    started = time.monotonic()
    assert run_runtime(pipeline, clean).returncode == 0
    return clean, time.monotonic() - started


def running_steps(locations: Locations) -> list[str]:
    conf = locations.data_root("chain") / contract.RUN_DIR_NAME / contract.SUPERVISOR_CONF
    if not conf.exists():
        return []
    out = subprocess.run(["supervisorctl", "-c", str(conf), "status"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if " RUNNING " in f" {line} "]


def survivors(level: str, locations: Locations) -> set[str]:
    """Steps whose every output survives this level, by the killed run's own journal."""
    made = durability(locations.journal("chain"))
    if level in ("process", "container"):
        return made.committed
    tier = made.on_ssd if level == "pod" else made.on_pv
    return {step for step in ORDER if all((step, data) in tier for data in OUTPUTS[step])}


@pytest.mark.parametrize("level", LEVELS)
def test_random_kills_never_lose_committed_work(tmp_path, level):
    rng = random.Random(f"{SEED}-{level}")
    pipeline = make_chain(tmp_path / "pipeline", tmp_path / "gate")
    clean, clean_seconds = clean_run(pipeline, tmp_path)
    expected = read_final(clean)
    shm_roots = [clean.shm.resolve()]
    reran_total = 0
    try:
        for round_number in range(ROUNDS):
            locations = fresh_locations(tmp_path / f"round-{round_number}")
            shm_roots.append(locations.shm.resolve())
            delay = rng.uniform(0.05, clean_seconds * 1.1)
            runner = subprocess.Popen(runtime_command(pipeline, locations), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(delay)
            if level == "process":
                victims = running_steps(locations)
                conf = locations.data_root("chain") / contract.RUN_DIR_NAME / contract.SUPERVISOR_CONF
                if victims:
                    victim = rng.choice(victims)
                    pid = subprocess.run(["supervisorctl", "-c", str(conf), "pid", victim],
                                         capture_output=True, text=True).stdout.strip()
                    if pid.isdigit() and int(pid) > 0:
                        with contextlib.suppress(ProcessLookupError):  # it may have ended on its own meanwhile
                            os.kill(int(pid), 9)
                runner.wait(timeout=60)
            else:
                kill_tree(runner.pid)
                runner.wait(timeout=60)
            kept = survivors(level, locations)
            if level in ("pod", "node"):
                subprocess.run(["rm", "-rf", str(locations.shm.resolve() / "chain")], check=True)
            if level == "node":
                subprocess.run(["rm", "-rf", str(locations.ssd)], check=True)
            resumed = run_runtime(pipeline, locations)
            assert resumed.returncode == 0, f"round {round_number} (delay {delay:.3f}s): {resumed.stderr}"
            assert read_final(locations) == expected, f"round {round_number} (delay {delay:.3f}s)"
            journal = locations.journal("chain")
            rerun = set(started_steps(journal)) if journal.exists() else set()
            assert not (rerun & kept), (f"round {round_number} (delay {delay:.3f}s, level {level}): "
                                        f"re-ran {sorted(rerun & kept)} although they had survived")
            reran_total += len(rerun)
    finally:
        for shm_root in shm_roots:
            subprocess.run(["rm", "-rf", str(shm_root)], check=False)
    assert reran_total < ROUNDS * len(ORDER)  # resumes reused work, on the whole


# ------------------------------------------------------------------ many files
# spray writes a directory of many small files with assorted modes (packed into data.tar by its checkpoints);
# digest reads it back, hashing each file's path, mode and bytes, so a restore that lost a file or a mode shows.
SPRAY = """\
import os
out = os.environ["IMAGEKIT_OUT_SPRAY"]
for number in range(int(os.environ["FILES"])):
    directory = f"{out}/d{number // 100:03}"
    if number % 100 == 0:
        os.makedirs(directory)
    path = f"{directory}/f{number % 100:02}"
    with open(path, "w") as handle:
        handle.write(str(number) * (number % 7))
    os.chmod(path, (0o644, 0o600, 0o755, 0o444)[number % 4])
"""
DIGEST = """\
import hashlib, os
root = os.environ["IMAGEKIT_IN_SPRAY"]
digest = hashlib.sha256()
for directory, dirs, files in sorted(os.walk(root)):
    dirs.sort()
    for name in sorted(files):
        path = os.path.join(directory, name)
        digest.update(f"{os.path.relpath(path, root)} {os.stat(path).st_mode:o}\\n".encode())
        with open(path, "rb") as handle:
            digest.update(handle.read())
with open(os.environ["IMAGEKIT_OUT_DIGEST"], "w") as out:
    out.write(digest.hexdigest() + "\\n")
"""
MANY_ROUNDS = int(os.environ.get("IMAGEKIT_CHAOS_MANY_ROUNDS", "6"))


def make_spray(root, files: int = 20000):
    from conftest import write_pipeline, write_step
    write_step(root / "steps", "spray", SPRAY, outputs=["spray"], shell=False)
    write_step(root / "steps", "digest", DIGEST, inputs=["spray"], outputs=["digest"], shell=False)
    return write_pipeline(root, "spray", ["spray", "digest"], results=["digest"], checkpoint={"major": ["spray"]},
                          params={"FILES": str(files)})


def visible_checkpoints_verify(locations: Locations) -> int:
    """Every checkpoint a killed run left visible (not .tmp-) is whole: its manifest is there and it verifies."""
    from imagekit_runtime.checkpoint.store import MANIFEST, CheckpointStore, Tier
    from imagekit_runtime.layout import RunLayout
    checked = 0
    for tier_name, base in (("ssd", locations.ssd), ("pv", locations.pv)):
        root = base / "spray" / "shard-0"
        if not root.is_dir():
            continue
        layout = RunLayout(shm_dir=locations.shm, run_dir=locations.root / "run", results_dir=locations.results,
                           ssd_dir=locations.ssd, pv_dir=locations.pv)
        store = CheckpointStore(layout=layout, pipeline="spray", shard_index=0, major=(),
                                tiers=[Tier(tier_name, root)], warnings=[])
        for item in root.iterdir():
            if item.name.startswith("."):
                continue
            assert (item / MANIFEST).is_file(), f"{item}: visible without its manifest"
            manifest = __import__("json").loads((item / MANIFEST).read_text())
            store.verify(item, manifest["step_key"], manifest["data"])  # raises CorruptCheckpoint
            checked += 1
    return checked


@pytest.mark.parametrize("level", ["pod", "node"])
def test_random_kills_during_many_file_checkpoints_restore_every_file_and_mode(tmp_path, level):
    """kill -9 of the whole runtime at random moments (often inside the spray checkpoint), then the level's loss:
    nothing visible is incomplete, and the resume's result equals a clean run's (every file, every mode)."""
    rng = random.Random(f"{SEED}-many-{level}")
    pipeline = make_spray(tmp_path / "pipeline")
    clean, clean_seconds = clean_run(pipeline, tmp_path)
    expected = (clean.results / "digest").read_text()
    shm_roots = [clean.shm.resolve()]
    verified = 0
    try:
        for round_number in range(MANY_ROUNDS):
            locations = fresh_locations(tmp_path / f"round-{round_number}")
            shm_roots.append(locations.shm.resolve())
            delay = rng.uniform(0.3, clean_seconds)
            runner = subprocess.Popen(runtime_command(pipeline, locations), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            time.sleep(delay)
            kill_tree(runner.pid)
            runner.wait(timeout=60)
            verified += visible_checkpoints_verify(locations)
            subprocess.run(["rm", "-rf", str(locations.shm.resolve() / "spray")], check=True)
            if level == "node":
                subprocess.run(["rm", "-rf", str(locations.ssd)], check=True)
            resumed = run_runtime(pipeline, locations)
            assert resumed.returncode == 0, f"round {round_number} (delay {delay:.3f}s): {resumed.stderr}"
            assert "not trusted" not in resumed.stderr, resumed.stderr
            assert (locations.results / "digest").read_text() == expected, f"round {round_number} ({delay:.3f}s)"
    finally:
        for shm_root in shm_roots:
            subprocess.run(["rm", "-rf", str(shm_root)], check=False)
    assert verified > 0  # some kills came after a checkpoint was made, and it verified
