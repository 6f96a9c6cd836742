"""The environment is checked before anything runs: an shm that does not fit, or an output directory that cannot be
written, is refused with one line and exit 3, and no step starts."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit, write_pipeline, write_step
from imagekit_core.errors import EnvironmentMissing
from imagekit_core.spec import load_pipeline
from imagekit_runtime.run.preflight import check_shm, check_writable, held_bytes


def touching_pipeline(root: Path, **settings: object) -> Path:
    """One step that leaves a mark outside the pipeline's directories when it runs."""
    write_step(root / "steps", "mark", f'touch {root}/ran; echo x > "$IMAGEKIT_OUT_X"', outputs=["x"])
    return write_pipeline(root, "pre", ["mark"], results=["x"], **settings)


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_an_shm_larger_than_the_machine_is_refused_before_any_step(tmp_path, locations):  # 3Ti: under the 4Ti bound
    pipeline = touching_pipeline(tmp_path, shm="3Ti")
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"{pipeline}: shm: 3.0 TiB does not fit in {locations.shm / 'pre' / 'shard-0'}" in line
    assert "free" in line and "(fix: lower `shm`" in line
    assert not (tmp_path / "ran").exists()


def test_shm_counts_what_the_shard_already_holds(tmp_path, tmpfs):
    shm = tmpfs("4m")
    spec = load_pipeline(touching_pipeline(tmp_path, shm="3Mi"))
    shard = shm / "pre" / "shard-0"
    shard.mkdir(parents=True)
    check_shm(spec, shard)
    (shm / "other").write_bytes(b"x" * (2 << 20))  # someone else's data: leaves too little
    with pytest.raises(EnvironmentMissing, match="shm: 3.0 MiB does not fit"):
        check_shm(spec, shard)
    (shm / "other").rename(shard / "kept")  # this shard's own data (a resume): it counts as room
    assert held_bytes(shard) == 2 << 20
    check_shm(spec, shard)


def test_an_unwritable_results_directory_is_refused(tmp_path, locations):
    pipeline = touching_pipeline(tmp_path, shm="16Mi")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = imagekit("run", pipeline, "--shm-dir", locations.shm, "--no-checkpoints", "--results", blocker / "out")
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"the results directory {blocker / 'out'} is not writable" in line and "(fix: pass --results DIR" in line
    assert not (tmp_path / "ran").exists()


def test_a_read_only_checkpoint_directory_is_refused(tmp_path, locations, tmpfs):
    read_only = tmpfs("1m")
    remounted = subprocess.run(["mount", "-o", "remount,ro", str(read_only)], capture_output=True, text=True)
    if remounted.returncode != 0:
        pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
    pipeline = touching_pipeline(tmp_path, shm="16Mi")
    result = imagekit("run", pipeline, "--shm-dir", locations.shm, "--ssd", read_only, "--pv", locations.pv,
                      "--results", locations.results)
    assert result.returncode == 3, result.stderr
    line = one_error_line(result.stderr)
    assert f"the ssd checkpoint directory {read_only} is not writable (Read-only file system)" in line
    assert "--no-checkpoints" in line
    assert not (tmp_path / "ran").exists()


def test_missing_directories_are_created(tmp_path):
    directory = tmp_path / "deep" / "results"
    check_writable(directory, "results", "--results")
    assert directory.is_dir() and list(directory.iterdir()) == []
