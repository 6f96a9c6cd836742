"""A directory checkpoint packs its small files, links and directories into data.tar: verify and restore."""
from __future__ import annotations

import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from imagekit_runtime.checkpoint.packed import PACK_BELOW, _ustar_header
from imagekit_runtime.checkpoint.store import MANIFEST, CheckpointStore, CorruptCheckpoint, Tier
from imagekit_runtime.layout import RunLayout

STEP_KEY = "k" * 64


def make_tree(root: Path, files: int = 300) -> dict[str, tuple[bytes, int]]:
    """Many small files in nested directories with assorted modes, a big file, a link, an empty directory."""
    written: dict[str, tuple[bytes, int]] = {}
    for number in range(files):
        relative = f"d{number % 7}/sub{number % 3}/f{number:04}"
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        content = str(number).encode() * (number % 5)  # some are empty
        path.write_bytes(content)
        mode = (0o600, 0o644, 0o755, 0o400)[number % 4]
        path.chmod(mode)
        written[relative] = (content, mode)
    big = os.urandom(PACK_BELOW + 123)
    (root / "d1" / "big.bin").write_bytes(big)
    written["d1/big.bin"] = (big, 0o644)
    (root / "d1" / "big.bin").chmod(0o644)
    (root / "empty").mkdir()
    (root / "empty").chmod(0o750)
    (root / "alias").symlink_to("d0/sub0/f0000")
    return written


def store_at(tmp_path: Path) -> tuple[CheckpointStore, Tier]:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "run", results_dir=tmp_path / "results",
                       ssd_dir=tmp_path / "ssd", pv_dir=None)
    tier = Tier("ssd", tmp_path / "ssd" / "p" / "shard-0")
    return CheckpointStore(layout=layout, pipeline="p", shard_index=0, major=(), tiers=[tier], warnings=[]), tier


@pytest.fixture
def packed(tmp_path: Path) -> tuple[CheckpointStore, Path, dict[str, tuple[bytes, int]]]:
    source = tmp_path / "source"
    written = make_tree(source)
    store, tier = store_at(tmp_path)
    item = store.write(tier, "make", "tree", STEP_KEY, source, run="run-1")
    assert item is not None
    return store, item, written


def test_small_files_go_into_one_tar_and_big_ones_stay_files(packed) -> None:
    _store, item, written = packed
    with tarfile.open(item / "data.tar") as archive:
        names = archive.getnames()
    assert len([n for n in names if "/f" in n]) == len(written) - 1
    assert "d1/big.bin" not in names and "alias" in names and "empty" in names
    assert [p.relative_to(item / "data").as_posix() for p in (item / "data").rglob("*") if p.is_file()] == \
        ["d1/big.bin"]
    manifest = json.loads((item / MANIFEST).read_text())
    assert manifest["packed"] == "data.tar"
    assert manifest["bytes"] == sum(len(content) for content, _mode in written.values())


def test_packed_checkpoint_verifies_and_restores_every_file_with_its_mode(packed) -> None:
    store, item, written = packed
    store.verify(item, STEP_KEY, "tree")
    store.layout.committed_dir("make").mkdir(parents=True)
    store.restore("make", "tree", STEP_KEY, "ssd", run="run-2")
    restored = store.layout.input_path("make", "tree")
    for relative, (content, mode) in written.items():
        assert (restored / relative).read_bytes() == content, relative
        assert stat.S_IMODE((restored / relative).stat().st_mode) == mode, relative
    assert os.readlink(restored / "alias") == "d0/sub0/f0000"
    assert stat.S_IMODE((restored / "empty").stat().st_mode) == 0o750
    record = json.loads(store.layout.commit_record("make").read_text())
    assert record["outputs"]["tree"] >= len(written) * 512  # blocks in shm, not apparent bytes


def rewrite_member(item: Path, name: str, content: bytes) -> None:
    """Replace one member's bytes in the tar (same size: the stream stays well-formed)."""
    pack = item / "data.tar"
    with tarfile.open(pack) as archive:
        member = archive.getmember(name)
    with open(pack, "r+b") as raw:
        raw.seek(member.offset_data)
        raw.write(content)


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda item: rewrite_member(item, "d0/sub0/f0021", b"xx"), "data.tar: d0/sub0/f0021: sha256 mismatch"),
    (lambda item: (item / "data.tar").write_bytes((item / "data.tar").read_bytes()[:4096]),
     "data.tar: d0/sub0/f0063: in the manifest but not in the pack"),  # cut at a header: the stream ends early
    (lambda item: (item / "data.tar").write_bytes((item / "data.tar").read_bytes()[:4000]),
     "data.tar: the pack is not a whole tar stream"),  # cut inside a header
    (lambda item: (item / "data.tar").unlink(), "data.tar: [Errno 2]"),
    (lambda item: (item / "data" / "d1" / "big.bin").write_bytes(b"short"), "d1/big.bin: size 5"),
], ids=["packed-file-changed", "pack-cut-at-a-header", "pack-cut-in-a-header", "pack-gone", "big-file-changed"])
def test_a_damaged_pack_is_not_trusted(packed, damage, reason: str) -> None:
    store, item, _written = packed
    damage(item)
    with pytest.raises(CorruptCheckpoint) as caught:
        store.verify(item, STEP_KEY, "tree")
    assert str(caught.value).startswith(reason)


def test_a_member_missing_from_the_pack_is_named(packed) -> None:
    store, item, _written = packed
    manifest = json.loads((item / MANIFEST).read_text())
    manifest["files"].append({"path": "d0/ghost", "size": 0, "sha256": "0" * 64, "mode": 0o644, "packed": True})
    (item / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptCheckpoint, match="d0/ghost: in the manifest but not in the pack"):
        store.verify(item, STEP_KEY, "tree")


def test_the_fast_header_is_the_ustar_header_tarfile_writes() -> None:
    for name, kind, size, link, mode in [("a/b", tarfile.REGTYPE, 5, "", 0o644), ("d/", tarfile.DIRTYPE, 0, "", 0o755),
                                         ("l", tarfile.SYMTYPE, 0, "x/y", 0o777)]:
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mode, info.mtime, info.linkname = kind, size, mode, 1_700_000_000, link
        assert _ustar_header(name, mode, size, 1_700_000_000, kind, link) == \
            info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    assert _ustar_header("é" * 3, 0o644, 1, 0, tarfile.REGTYPE, "") is None  # left to tarfile (PAX)
    assert _ustar_header("n" * 101, 0o644, 1, 0, tarfile.REGTYPE, "") is None
