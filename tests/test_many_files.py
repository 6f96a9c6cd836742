"""Outputs of many small files: shm counted in the pages they take, and the pipeline's `shm` enforced at commit."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from checkpoint_support import run_runtime
from conftest import Locations, write_pipeline, write_step

MANY = """\
import os
out = os.environ["IMAGEKIT_OUT_MANY"]
for d in range({dirs}):
    os.makedirs(f"{{out}}/d{{d}}")
    for f in range(100):
        with open(f"{{out}}/d{{d}}/f{{f}}", "w") as handle:
            handle.write("x")
"""


def many_files_pipeline(root: Path, dirs: int, **settings: Any) -> Path:
    write_step(root / "steps", "make", MANY.format(dirs=dirs), outputs=["many"], shell=False)
    # What `du` says the run's shm directory holds while the consumer has its input (the peak).
    write_step(root / "steps", "measure", 'du -sB1 "$SHM_ROOT" | cut -f1 > "$IMAGEKIT_OUT_DU"',
               inputs=["many"], outputs=["du"])
    return write_pipeline(root, "many", ["make", "measure"], results=["du"], **settings)


def summary_of(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout)


def test_peak_shm_is_what_du_sees_of_the_runs_shm_directory(tmp_path, locations: Locations):
    pipeline = many_files_pipeline(tmp_path, dirs=50, params={"SHM_ROOT": str(locations.data_root("many"))})
    result = run_runtime(pipeline, locations, "--output", "json")
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    du = int((locations.results / "du").read_text())
    assert du >= 5000 * 4096  # every one-byte file takes a page of tmpfs
    assert abs(summary["peak_shm_bytes"] - du) <= 0.10 * du, (summary["peak_shm_bytes"], du)
    make, measure = summary["steps"]
    assert make["bytes_out"] >= 5000 * 4096 and measure["bytes_in"] == make["bytes_out"]


def test_a_commit_past_the_pipelines_shm_fails_the_step_as_enospc_would(tmp_path, locations: Locations):
    pipeline = many_files_pipeline(tmp_path, dirs=30, shm="8Mi",  # 3,000 files: 3 KB apparent, 12 MiB of pages
                                   params={"SHM_ROOT": str(locations.data_root("many"))})
    result = run_runtime(pipeline, locations)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "step make failed after 1 attempt: shared memory is full (No space left on device)" in errors[0]
    assert "shm size 8.0 MiB, 11.7 MiB in use" in errors[0] and "raise `shm` in the pipeline" in errors[0], errors[0]
    assert not (locations.data_root("many") / "committed" / "make").exists()


def test_shm_soft_turns_the_refusal_into_a_warning(tmp_path, locations: Locations):
    pipeline = many_files_pipeline(tmp_path, dirs=30, shm="8Mi",
                                   params={"SHM_ROOT": str(locations.data_root("many"))})
    result = run_runtime(pipeline, locations, "--shm-soft")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "--shm-soft" in line]
    assert warnings and "step make: shared memory is full (No space left on device)" in warnings[0]
    assert int((locations.results / "du").read_text()) > 8 * 1024 * 1024
