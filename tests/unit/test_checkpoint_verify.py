"""Checkpoint verification (what is trusted, what is quarantined and why) and the content keys it relies on."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from imagekit_core.spec import PipelineSpec
from imagekit_runtime.checkpoint.store import MANIFEST, CheckpointStore, CorruptCheckpoint
from imagekit_runtime.keys import data_key, pipeline_key, step_keys
from imagekit_runtime.layout import RunLayout

from .graphs import DIAMOND, load_graph

PARAMS = {"COUNT": "10"}


@pytest.fixture
def spec(tmp_path: Path) -> PipelineSpec:
    return load_graph(tmp_path / "pipeline", DIAMOND, results=["final"], checkpoint={"major": ["squares"]})


def store_for(spec: PipelineSpec, root: Path, shard: int = 0) -> CheckpointStore:
    layout = RunLayout(shm_dir=root / "shm", run_dir=root / "run", results_dir=root / "results",
                       ssd_dir=root / "ssd", pv_dir=root / "pv")
    return CheckpointStore.for_spec(spec, layout, shard, warnings=[])


def checkpoint_file(store: CheckpointStore, tmp_path: Path, data: str = "squares", content: bytes = b"1\n4\n9\n",
                    step_key: str = "k" * 64) -> tuple[Path, Path]:
    """Write `data` to every tier it goes to; return its SSD and PV item directories (PV may not exist)."""
    source = tmp_path / f"source-{data}"
    source.write_bytes(content)
    step = {"squares": "square", "evens": "evens"}[data]
    for tier in store.tiers:
        if tier.name == "ssd" or data in store.major:
            assert store.write(tier, step, data, step_key, source, run="run-1") is not None
    key = data_key(step_key, data)
    ssd, pv = store.tier("ssd"), store.tier("pv")
    assert ssd is not None and pv is not None
    return ssd.item_dir(data, key), pv.item_dir(data, key)


def quarantined(store: CheckpointStore, tier: str) -> dict[str, str]:
    """name -> reason of what was moved aside in this tier."""
    found = store.tier(tier)
    assert found is not None
    if not found.quarantine.is_dir():
        return {}
    return {path.name.removesuffix(".reason"): path.read_text().strip()
            for path in found.quarantine.glob("*.reason")}


def test_intact_checkpoint_is_found_on_the_ssd_first(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    ssd_item, pv_item = checkpoint_file(store, tmp_path)
    assert store.locate("square", "squares", "k" * 64) == "ssd"
    manifest = store.verify(ssd_item, "k" * 64, "squares")
    assert (manifest["bytes"], manifest["kind"], manifest["step"], manifest["shard"]) == (6, "file", "square", 0)
    assert (pv_item / MANIFEST).is_file()
    assert store.warnings == []
    assert quarantined(store, "ssd") == {}


def test_minor_data_goes_to_the_ssd_only(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    ssd_item, pv_item = checkpoint_file(store, tmp_path, data="evens")
    assert (ssd_item / MANIFEST).is_file()
    assert not pv_item.exists()
    assert store.describe("evens", "evens", "k" * 64) == {"ssd": True, "pv": False}


def test_no_checkpoint_with_this_key_is_none_without_quarantine(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    checkpoint_file(store, tmp_path)
    assert store.locate("square", "squares", "other-key") is None
    assert store.warnings == []
    assert quarantined(store, "ssd") == {}


def test_directory_output_verifies_file_by_file(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    source = tmp_path / "evens-dir"
    (source / "sub").mkdir(parents=True)
    (source / "a").write_text("2\n")
    (source / "sub" / "b").write_text("4\n")
    tier = store.tier("ssd")
    assert tier is not None
    item = store.write(tier, "evens", "evens", "k" * 64, source, run="run-1")
    assert item is not None
    manifest = store.verify(item, "k" * 64, "evens")
    assert manifest["kind"] == "dir"
    assert [entry["path"] for entry in manifest["files"] if not entry.get("dir")] == ["a", "sub/b"]
    assert [entry["path"] for entry in manifest["files"] if entry.get("dir")] == ["sub"]
    (item / "data" / "sub").mkdir()
    (item / "data" / "sub" / "extra").write_text("x")
    with pytest.raises(CorruptCheckpoint, match="files differ from the manifest: .*sub/extra"):
        store.verify(item, "k" * 64, "evens")


def damage_manifest(item: Path, **changes: object) -> None:
    manifest = json.loads((item / MANIFEST).read_text())
    manifest.update(changes)
    (item / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda item: (item / MANIFEST).unlink(), "no manifest (torn write)"),
    (lambda item: (item / MANIFEST).write_text('{"key": "ab'), "manifest is not valid JSON"),
    (lambda item: (item / "data").write_bytes(b"1\n4\n8\n"), "data: sha256 mismatch"),
    (lambda item: (item / "data").write_bytes(b"1\n4\n9\n16\n"), "data: size 9, manifest says 6"),
    (lambda item: (item / "data").unlink(), "files differ from the manifest"),
    (lambda item: damage_manifest(item, shard=1), "shard is 1, expected 0 (foreign checkpoint)"),
    (lambda item: damage_manifest(item, pipeline="other"),
     "pipeline is 'other', expected 'graph' (foreign checkpoint)"),
    (lambda item: damage_manifest(item, data="evens"), "data is 'evens', expected 'squares' (foreign checkpoint)"),
    (lambda item: damage_manifest(item, key="0" * 64), "key is '0000"),
], ids=["torn", "bad-json", "wrong-sha", "wrong-size", "data-gone", "foreign-shard", "foreign-pipeline",
        "foreign-data", "foreign-key"])
def test_damaged_ssd_checkpoint_is_quarantined_with_its_reason_and_pv_used(
        spec: PipelineSpec, tmp_path: Path, damage: Callable[[Path], object], reason: str) -> None:
    store = store_for(spec, tmp_path)
    ssd_item, _pv_item = checkpoint_file(store, tmp_path)
    damage(ssd_item)
    assert store.locate("square", "squares", "k" * 64) == "pv"
    assert not ssd_item.exists()
    ((name, recorded),) = quarantined(store, "ssd").items()
    assert name.startswith(ssd_item.name + "-")
    assert recorded.startswith(reason)
    (warning,) = store.warnings
    assert warning.startswith(f"ssd checkpoint {ssd_item} is not trusted: {reason}")


def test_damaged_everywhere_is_none_and_both_are_quarantined(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    ssd_item, pv_item = checkpoint_file(store, tmp_path)
    for item in (ssd_item, pv_item):
        (item / "data").write_bytes(b"0\n0\n0\n")
    assert store.locate("square", "squares", "k" * 64) is None
    assert list(quarantined(store, "ssd").values()) == ["data: sha256 mismatch"]
    assert list(quarantined(store, "pv").values()) == ["data: sha256 mismatch"]
    assert len(store.warnings) == 2


def test_checkpoint_of_another_shard_is_foreign(spec: PipelineSpec, tmp_path: Path) -> None:
    # Shard 1's checkpoint copied into shard 0's directory has the same name (keys are per data, not per shard).
    other = store_for(spec, tmp_path / "elsewhere", shard=1)
    other_item, _ = checkpoint_file(other, tmp_path)
    store = store_for(spec, tmp_path)
    ssd = store.tier("ssd")
    assert ssd is not None
    ssd.root.mkdir(parents=True)
    shutil.copytree(other_item, ssd.root / other_item.name)
    assert store.locate("square", "squares", "k" * 64) is None
    assert list(quarantined(store, "ssd").values()) == ["shard is 1, expected 0 (foreign checkpoint)"]


def test_a_verified_location_is_remembered(spec: PipelineSpec, tmp_path: Path) -> None:
    store = store_for(spec, tmp_path)
    ssd_item, _ = checkpoint_file(store, tmp_path)
    assert store.locate("square", "squares", "k" * 64) == "ssd"
    (ssd_item / "data").write_bytes(b"changed")
    assert store.locate("square", "squares", "k" * 64) == "ssd"  # not verified twice within a run


# ------------------------------------------------------------------ keys

def keys_of(spec: PipelineSpec, shard: tuple[int, int] = (0, 2), params: dict[str, str] = PARAMS) -> dict[str, str]:
    return step_keys(spec, shard[0], shard[1], params)


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    assert before.keys() == after.keys()
    return {name for name in before if before[name] != after[name]}


def test_keys_are_stable_for_the_same_spec(spec: PipelineSpec) -> None:
    keys = keys_of(spec)
    assert keys == keys_of(spec)
    assert set(keys) == set(DIAMOND)
    assert len(set(keys.values())) == len(keys)
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in keys.values())


def test_code_change_rekeys_the_step_and_everything_downstream(spec: PipelineSpec, tmp_path: Path) -> None:
    before = keys_of(spec)
    (spec.step("square").directory / "run.sh").write_text("true  # changed\n")
    assert changed(before, keys_of(spec)) == {"square", "total", "final"}


def test_a_new_file_in_a_step_package_rekeys_it(spec: PipelineSpec) -> None:
    before = keys_of(spec)
    (spec.step("evens").directory / "helper.py").write_text("")
    assert changed(before, keys_of(spec)) == {"evens", "total", "final"}


def test_caches_in_a_step_package_do_not_rekey_it(spec: PipelineSpec) -> None:
    before = keys_of(spec)
    directory = spec.step("gen").directory
    (directory / "__pycache__").mkdir()
    (directory / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (directory / "stray.pyc").write_bytes(b"\0")
    assert keys_of(spec) == before


def test_params_rekey_every_step(spec: PipelineSpec) -> None:
    before = keys_of(spec)
    assert changed(before, keys_of(spec, params={"COUNT": "11"})) == set(DIAMOND)
    assert changed(before, keys_of(spec, params={**PARAMS, "NEW": ""})) == set(DIAMOND)
    assert keys_of(spec, params=dict(reversed(list({"A": "1", **PARAMS}.items())))) == \
        keys_of(spec, params={"A": "1", **PARAMS})  # order of params does not matter


@pytest.mark.parametrize("shard", [(1, 2), (0, 3)])
def test_shard_rekeys_every_step(spec: PipelineSpec, shard: tuple[int, int]) -> None:
    assert changed(keys_of(spec), keys_of(spec, shard=shard)) == set(DIAMOND)


def test_input_keys_propagate_but_siblings_stay(tmp_path: Path) -> None:
    graph = {**DIAMOND, "side": ([], ["side"])}
    spec = load_graph(tmp_path, graph)
    before = keys_of(spec)
    (spec.step("gen").directory / "run.sh").write_text("echo changed\n")
    assert changed(before, keys_of(spec)) == set(DIAMOND)  # everything below gen, not the unrelated `side`


def test_data_and_pipeline_keys(spec: PipelineSpec) -> None:
    keys = keys_of(spec)
    assert data_key(keys["square"], "squares") != data_key(keys["square"], "evens")
    assert data_key(keys["square"], "squares") == data_key(keys["square"], "squares")
    assert pipeline_key(keys) == pipeline_key(dict(reversed(list(keys.items()))))
    assert pipeline_key(keys) != pipeline_key({**keys, "final": keys["gen"]})
