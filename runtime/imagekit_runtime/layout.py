"""Where a run keeps things: data in shm, logs and journal in the run dir, results, checkpoints.

    <shm_dir>/committed/<step>/<data>      committed outputs, sealed read-only (data/seal.py)
    <shm_dir>/committed/<step>/.commit.json   commit record: content keys and sizes
    <shm_dir>/staging/<step>/<data>        where a running step writes (IMAGEKIT_OUT_*)
    <run_dir>/journal.jsonl                transitions of every run on this shard
    <run_dir>/logs/<step>.log              each step's stdout and stderr
    <run_dir>/supervisord.conf             the generated supervisord configuration
    <run_dir>/python/imagekit_runtime      a link to this runtime: the steps' PYTHONPATH (the step helper)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from imagekit_core import contract

from .locations import CORE_DIR, PACKAGE_DIR


@dataclass(frozen=True)
class RunLayout:
    shm_dir: Path
    run_dir: Path
    results_dir: Path
    ssd_dir: Path | None
    pv_dir: Path | None

    @property
    def committed_root(self) -> Path:
        return self.shm_dir / contract.COMMITTED_DIR

    @property
    def staging_root(self) -> Path:
        return self.shm_dir / contract.STAGING_DIR

    def committed_dir(self, step: str) -> Path:
        return self.committed_root / step

    def staging_dir(self, step: str) -> Path:
        return self.staging_root / step

    def input_path(self, producer: str, data: str) -> Path:
        return self.committed_dir(producer) / data

    def output_path(self, step: str, data: str) -> Path:
        return self.staging_dir(step) / data

    def commit_record(self, step: str) -> Path:
        return self.committed_dir(step) / contract.COMMIT_RECORD

    @property
    def journal(self) -> Path:
        return self.run_dir / contract.JOURNAL_FILE

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / contract.LOGS_DIR

    def step_log(self, step: str) -> Path:
        return self.logs_dir / f"{step}.log"

    @property
    def supervisor_conf(self) -> Path:
        return self.run_dir / contract.SUPERVISOR_CONF

    @property
    def supervisor_log(self) -> Path:
        return self.run_dir / contract.SUPERVISOR_LOG

    @property
    def completion_marker(self) -> Path:
        return self.results_dir / contract.COMPLETION_MARKER

    @property
    def helper_path(self) -> Path:
        """What steps get on PYTHONPATH: a directory holding only the `imagekit_runtime` and `imagekit_core`
        packages (links to this runtime and its vocabulary), so a step sees its own environment and never the
        site-packages imagekit runs from."""
        return self.run_dir / contract.HELPER_DIR

    def create(self) -> None:
        for directory in (self.committed_root, self.staging_root, self.logs_dir, self.results_dir, self.helper_path):
            directory.mkdir(parents=True, exist_ok=True)
        for package in (PACKAGE_DIR, CORE_DIR):
            link = self.helper_path / package.name
            if not link.is_symlink() or os.readlink(link) != str(package):
                link.unlink(missing_ok=True)
                link.symlink_to(package, target_is_directory=True)

