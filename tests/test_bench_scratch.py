"""The build bench's scratch filesystem (bench/scratch_fs.py) is what its docs say: a fresh ext4 with a
journal, mounted for the run and gone afterwards, nothing left mounted or on disk."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from scratch_fs import ScratchUnavailable, files_per_second, journaled_scratch  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a loop device needs root")


def _mount_of(path: Path) -> tuple[str, str, str] | None:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        device, mount_point, kind, options = line.split()[:4]
        if mount_point == str(path):
            return device, kind, options
    return None


def test_a_fresh_journaled_ext4_for_the_run_and_nothing_left_after(tmp_path: Path) -> None:
    with journaled_scratch(tmp_path, size="256M") as root:
        mounted = _mount_of(root)
        assert mounted is not None and mounted[1] == "ext4"
        device = Path(mounted[0]).name
        assert Path("/proc/fs/jbd2").joinpath(f"{device}-8").is_dir(), "the filesystem has a journal"
        assert [entry.name for entry in root.iterdir()] == ["lost+found"]
        assert files_per_second(root, count=50) > 0
        assert len(list(root.glob("creation-probe-*/*"))) == 50  # kept: removing them is what slows a no-journal fs
    assert _mount_of(root) is None
    assert not (tmp_path / "scratch.ext4").exists()


def test_without_root_it_says_to_pass_storage_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ScratchUnavailable, match="--storage here"), journaled_scratch(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_failing_mount_is_one_line_naming_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "mount"
    fake.write_text("#!/bin/sh\necho 'mount: no loop device' >&2\nexit 32\n")
    fake.chmod(0o755)
    with pytest.raises(ScratchUnavailable, match=r"`mount -o loop,noinit_itable .*` exited 32.*--storage here"), \
            journaled_scratch(tmp_path / "work", size="64M"):
        pass
    assert not (tmp_path / "work" / "scratch.ext4").exists()
