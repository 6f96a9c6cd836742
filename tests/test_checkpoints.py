"""Resume after a failed process, container, pod or node without losing committed work (the failure levels of docs/contract.md)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from checkpoint_support import (
    apply_level,
    checkpointed,
    expected_final,
    make_chain,
    read_final,
    run_runtime,
    running,
    runtime_command,
    wait_for,
)
from conftest import imagekit, journal_entries, last_run, started_steps
from imagekit_core import contract


@pytest.fixture
def chain(tmp_path):
    gate = tmp_path / "gate"
    return make_chain(tmp_path, gate), gate


def hold(gate: Path, step: str) -> Path:
    path = gate / f"hold-{step}"
    path.touch()
    return path


def start(pipeline, locations):
    return subprocess.Popen(runtime_command(pipeline, locations), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def interrupt(pipeline: Path, gate: Path, locations, level: str, held_step: str, *checkpoints: tuple[str, str, str]):
    """Run the pipeline with `held_step` held at its gate; once it runs and the given (step, data, tier)
    checkpoints exist, inject the failure `level`; then open the gate. Returns the journal path."""
    held = hold(gate, held_step)
    runner = start(pipeline, locations)
    journal = locations.journal("chain")
    wait_for(lambda: running(journal, held_step) and all(checkpointed(journal, *c) for c in checkpoints))
    apply_level(level, runner, locations, "chain", step=held_step)
    held.unlink()
    return journal, runner


def plan_of_last_run(journal: Path) -> dict:
    return next(e for e in last_run(journal) if e["event"] == contract.Event.PLAN)


def test_clean_run_checkpoints_every_output_and_major_ones_on_pv(chain, locations):
    pipeline, _gate = chain
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert read_final(locations) == expected_final()
    ssd = locations.ssd / "chain" / "shard-0"
    pv = locations.pv / "chain" / "shard-0"
    assert sorted(p.name.split("@")[0] for p in ssd.iterdir()) == ["evens", "final", "numbers", "squares", "total"]
    assert sorted(p.name.split("@")[0] for p in pv.iterdir() if not p.name.startswith(".")) == ["squares", "total"]
    manifest = json.loads(next(ssd.glob("numbers@*")).joinpath(contract.CHECKPOINT_MANIFEST).read_text())
    assert manifest["step"] == "gen" and manifest["shard"] == 0 and manifest["kind"] == "file"
    assert manifest["files"][0]["size"] == (ssd / next(ssd.glob("numbers@*")).name / "data").stat().st_size
    assert len(manifest["files"][0]["sha256"]) == 64
    final_manifest = json.loads(next(ssd.glob("final@*")).joinpath(contract.CHECKPOINT_MANIFEST).read_text())
    assert final_manifest["kind"] == "dir" and {f["path"] for f in final_manifest["files"]} == {"total", "shard"}


def test_changed_step_reruns_itself_and_its_dependants_only(chain, locations):
    pipeline, _gate = chain
    assert run_runtime(pipeline, locations).returncode == 0
    script = pipeline.parent / "steps" / "evens" / "run.sh"
    script.write_text(script.read_text() + "# a change in the step package\n")
    second = run_runtime(pipeline, locations)
    assert second.returncode == 0, second.stderr
    journal = locations.journal("chain")
    assert started_steps(journal) == ["evens", "total", "final"]
    # numbers and squares were freed from shm after the first run: they come back from the SSD checkpoints.
    assert plan_of_last_run(journal)["restore"] == {"gen/numbers": "ssd", "square/squares": "ssd"}
    assert read_final(locations) == expected_final()
    assert "changed since its outputs were committed" in second.stderr
    assert "not using 1 ssd checkpoint(s) of evens" in second.stderr  # the runtime says why
    dry = imagekit("run", pipeline, *locations.args(), "--dry-run", "--output", "json")
    assert dry.returncode == 0 and dry.summary["complete"] and dry.summary["would_run"] == []


def test_process_level_reruns_only_the_killed_step(chain, locations):
    pipeline, gate = chain
    held = hold(gate, "total")
    runner = start(pipeline, locations)
    journal = locations.journal("chain")
    wait_for(lambda: running(journal, "total"))
    apply_level("process", runner, locations, "chain", step="total")
    assert runner.returncode == 1
    assert "step total failed after 1 attempt: was terminated by SIGKILL" in runner.stderr.read()
    held.unlink()
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert started_steps(journal) == ["total", "final"]
    assert plan_of_last_run(journal)["restore"] == {}  # everything came from shm
    assert read_final(locations) == expected_final()


def test_killed_step_with_retries_is_rerun_in_the_same_run(tmp_path, locations):
    gate = tmp_path / "gate"
    pipeline = make_chain(tmp_path, gate)
    step_yaml = tmp_path / "steps" / "total" / "step.yaml"
    step_yaml.write_text(step_yaml.read_text() + "retries: 1\n")
    held = hold(gate, "total")
    runner = start(pipeline, locations)
    journal = locations.journal("chain")
    wait_for(lambda: running(journal, "total"))
    import os
    import signal as signals

    from checkpoint_support import step_pid
    pid = step_pid(locations, "chain", "total")
    assert pid is not None, "step total is not running"
    os.kill(pid, signals.SIGKILL)
    wait_for(lambda: any(e.get("to") == "backoff" for e in journal_entries(journal)))
    held.unlink()
    assert runner.wait(timeout=60) == 0
    attempts = [e for e in journal_entries(journal) if e.get("step") == "total" and e.get("to") == "running"]
    assert len(attempts) == 2
    assert read_final(locations) == expected_final()


@pytest.mark.parametrize("level", ["container", "pod"])
def test_runtime_killed_resumes_from_shm_or_ssd(chain, locations, level):
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, level, "total",
                           ("square", "squares", "ssd"), ("evens", "evens", "ssd"))
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert started_steps(journal) == ["total", "final"]
    restore = plan_of_last_run(journal)["restore"]
    if level == "container":
        assert restore == {}
    else:
        assert restore == {"square/squares": "ssd", "evens/evens": "ssd"}
    assert read_final(locations) == expected_final()


def test_node_level_resumes_from_major_checkpoints(chain, locations):
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, "node", "final", ("total", "total", "pv"))
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert started_steps(journal) == ["final"]
    assert plan_of_last_run(journal)["restore"] == {"total/total": "pv"}
    assert read_final(locations) == expected_final()


def test_node_level_reruns_what_only_the_ssd_held(chain, locations):
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, "node", "total", ("square", "squares", "pv"))
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    # squares is major (on the PV); evens and numbers were only on the lost SSD.
    assert started_steps(journal) == ["gen", "evens", "total", "final"]
    assert plan_of_last_run(journal)["restore"] == {"square/squares": "pv"}
    assert read_final(locations) == expected_final()


def flip_byte(path: Path, offset: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_flipped_byte_in_ssd_checkpoint_falls_back_to_pv(chain, locations):
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, "pod", "total", ("square", "squares", "pv"),
                           ("evens", "evens", "ssd"), ("square", "squares", "ssd"))
    ssd_item = next((locations.ssd / "chain" / "shard-0").glob("squares@*"))
    flip_byte(ssd_item / "data")
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert "not trusted: data: sha256 mismatch" in result.stderr
    assert plan_of_last_run(journal)["restore"] == {"square/squares": "pv", "evens/evens": "ssd"}
    assert started_steps(journal) == ["total", "final"]
    quarantined = list((locations.ssd / "chain" / contract.shard_dir_name(0) / contract.QUARANTINE_DIR).iterdir())
    assert any(p.name.startswith(ssd_item.name) for p in quarantined)  # moved aside for inspection
    assert read_final(locations) == expected_final()


def test_corrupt_everywhere_means_the_step_runs_again(chain, locations):
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, "pod", "total", ("square", "squares", "pv"),
                           ("evens", "evens", "ssd"), ("square", "squares", "ssd"))
    for tier in (locations.ssd, locations.pv):
        flip_byte(next((tier / "chain" / "shard-0").glob("squares@*")) / "data", offset=10)
    # A torn checkpoint: data present, manifest never written.
    (next((locations.ssd / "chain" / contract.shard_dir_name(0)).glob("evens@*")) / contract.CHECKPOINT_MANIFEST).unlink()
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert "no manifest (torn write)" in result.stderr
    # numbers is intact on the SSD: gen is not run again, its output is restored for the re-run of evens.
    assert started_steps(journal) == ["square", "evens", "total", "final"]
    assert plan_of_last_run(journal)["restore"] == {"gen/numbers": "ssd"}
    assert read_final(locations) == expected_final()


def test_foreign_checkpoint_is_never_used(chain, locations):
    pipeline, _gate = chain
    assert run_runtime(pipeline, locations).returncode == 0
    # Put shard 0's checkpoints where shard 1 would look for its own.
    from imagekit_core.spec import load_pipeline
    from imagekit_runtime.keys import data_key, step_keys
    spec = load_pipeline(pipeline)
    keys1 = step_keys(spec, 1, 1 + 1, dict(spec.params))
    shard0 = locations.ssd / "chain" / "shard-0"
    shard1 = locations.ssd / "chain" / "shard-1"
    shard1.mkdir(parents=True)
    for item in shard0.iterdir():
        if "@" in item.name:
            data = item.name.split("@")[0]
            producer = {"numbers": "gen", "squares": "square", "evens": "evens", "total": "total", "final": "final"}[data]
            subprocess.run(["cp", "-a", str(item), str(shard1 / f"{data}@{data_key(keys1[producer], data)[:16]}")],
                           check=True)
    second = run_runtime(pipeline, locations, "--shard-index", "1", "--shard-count", "2", "--results",
                         str(locations.root / "results-1"))
    assert second.returncode == 0, second.stderr
    assert "foreign checkpoint" in second.stderr
    journal1 = locations.journal("chain", shard=1)
    assert started_steps(journal1) == ["gen", "square", "evens", "total", "final"]
    assert (locations.root / "results-1" / "final" / "shard").read_text() == "shard 1\n"


def test_kill_during_checkpoint_copy_leaves_nothing_trusted(tmp_path, locations):
    gate = tmp_path / "gate"
    pipeline = make_chain(tmp_path, gate, count=3_000_000)  # ~20 MB of numbers, a visible copy window
    runner = start(pipeline, locations)
    ssd = locations.ssd / "chain" / "shard-0"
    wait_for(lambda: ssd.is_dir() and any(p.name.startswith(".tmp-") for p in ssd.iterdir()), interval=0.001)
    apply_level("container", runner, locations, "chain")
    for item in ssd.iterdir():
        if "@" in item.name and not item.name.startswith("."):
            assert (item / contract.CHECKPOINT_MANIFEST).exists()  # whatever is visible is whole
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert not any(p.name.startswith(".tmp-") for p in ssd.iterdir())  # leftovers cleaned
    # Equal to a clean run of the same pipeline elsewhere.
    from conftest import Locations
    clean = Locations(tmp_path / "clean")
    for sub in ("shm", "ssd", "pv", "results"):
        (clean.root / sub).mkdir(parents=True)
    assert run_runtime(pipeline, clean).returncode == 0
    assert read_final(locations) == read_final(clean)
    assert read_final(locations)["total"].split()[1] == "1500000"


def test_full_ssd_degrades_to_a_warning(chain, locations, tmpfs):
    tiny_ssd = tmpfs("128k")
    pipeline, _gate = chain
    result = subprocess.run(runtime_command(pipeline, locations, "--ssd", str(tiny_ssd)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ssd is full: no ssd checkpoint for squares" in result.stderr
    assert read_final(locations) == expected_final()
    assert not any(p.name.startswith(".tmp-") for p in (tiny_ssd / "chain" / "shard-0").iterdir())


def test_retention_prunes_checkpoints_of_old_runs(tmp_path, locations):
    gate = tmp_path / "gate"
    pipeline = make_chain(tmp_path, gate, count=100)
    text = pipeline.read_text().replace("major:", "retention: 1\n  major:")
    pipeline.write_text(text)
    ssd = locations.ssd / "chain" / "shard-0"
    keys_seen = []
    for count in (100, 200, 300):
        result = run_runtime(pipeline, locations, "--param", f"COUNT={count}")
        assert result.returncode == 0, result.stderr
        keys_seen.append({p.name for p in ssd.iterdir() if "@" in p.name})
    # After the third run: its own checkpoints plus those of one older run (retention 1).
    assert keys_seen[0] & keys_seen[2] == set()
    assert keys_seen[1] - keys_seen[0] <= keys_seen[2]
    assert len(keys_seen[2]) == 10


def test_status_shows_where_data_is_and_what_would_run(chain, locations):
    pipeline, gate = chain
    interrupt(pipeline, gate, locations, "pod", "total", ("square", "squares", "pv"), ("evens", "evens", "ssd"))
    status = imagekit("status", pipeline, *locations.args(), "--output", "json")
    assert status.returncode == 0, status.stderr
    report = status.summary
    items = {item["data"]: item for item in report["items"]}
    assert items["squares"]["shm"] is False and items["squares"]["ssd"] and items["squares"]["pv"]
    assert items["evens"]["ssd"] and not items["evens"]["pv"]
    assert items["total"] == {"data": "total", "step": "total", "shm": False, "ssd": False, "pv": False, "results": None}
    assert report["would_run"] == ["total", "final"]
    assert not report["complete"]
    text = imagekit("status", pipeline, *locations.args())
    assert "would run: total, final" in text.stdout


def test_a_manifest_missing_a_field_or_a_link_out_of_the_item_is_set_aside(chain, locations):
    """Hostile checkpoints: a manifest without its file list, and one whose data holds a link to / with a file
    beneath it. Neither crashes the run nor is restored: both are quarantined and their steps run again."""
    pipeline, gate = chain
    journal, _ = interrupt(pipeline, gate, locations, "pod", "total", ("square", "squares", "pv"),
                           ("evens", "evens", "ssd"), ("square", "squares", "ssd"))
    shard = locations.ssd / "chain" / contract.shard_dir_name(0)
    evens = next(shard.glob("evens@*"))
    manifest = json.loads((evens / contract.CHECKPOINT_MANIFEST).read_text())
    del manifest["files"]
    (evens / contract.CHECKPOINT_MANIFEST).write_text(json.dumps(manifest))
    squares = next(shard.glob("squares@*"))
    data = squares / "data"
    data.unlink()
    data.mkdir()
    (data / "out").symlink_to("/")
    for tier in (locations.pv,):
        item = next((tier / "chain" / "shard-0").glob("squares@*"))
        flip_byte(item / "data", offset=10)
    result = run_runtime(pipeline, locations)
    assert result.returncode == 0, result.stderr
    assert "manifest lacks or garbles a field" in result.stderr
    assert "Traceback" not in result.stderr
    assert started_steps(journal) == ["square", "evens", "total", "final"]
    assert read_final(locations) == expected_final()
    assert not any(shard.glob("evens@*")) or json.loads(
        (next(shard.glob("evens@*")) / contract.CHECKPOINT_MANIFEST).read_text()).get("files")


def test_pruning_follows_the_journals_run_order_not_the_clock(tmp_path):
    from imagekit_runtime.checkpoint.store import MANIFEST, CheckpointStore, Tier

    root = tmp_path / "ssd" / "p" / "shard-0"
    for run, created in (("run-old", 2_000_000_000.0), ("run-new", 1_000.0)):  # the old run's clock was ahead
        item = root / f"d@{run}"
        item.mkdir(parents=True)
        (item / MANIFEST).write_text(json.dumps({"key": f"k-{run}", "run": run, "created_at": created}))
    store = CheckpointStore.__new__(CheckpointStore)
    store.tiers = [Tier("ssd", root)]
    removed = store.prune(set(), retention=1, run_order=["run-old", "run-new"])
    assert [path.name for path in removed] == ["d@run-old"]
