"""Check the environment before anything runs: shm large enough, output directories writable.

Called once the shard is locked and before supervisord starts. Each refusal is one
line naming what is wrong and the fix, exit 3 (something outside is missing):

- the pipeline's `shm` must fit in the shm directory's filesystem: what it has
  free (statvfs) plus what this shard's directory already holds (a resumed run
  reuses that space);
- the results directory and the SSD and PV checkpoint directories (when used)
  are created if missing and must take a new file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from imagekit_core.errors import EnvironmentMissing
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.quantity import human_size

from ..layout import RunLayout


def held_bytes(directory: Path) -> int:
    """Bytes of storage the files under directory occupy (st_blocks), not following links."""
    total = 0
    stack = [str(directory)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        except FileNotFoundError:
            continue
    return total


def check_shm(spec: PipelineSpec, shm_dir: Path) -> None:
    stats = os.statvfs(shm_dir)
    free = stats.f_bavail * stats.f_frsize
    held = held_bytes(shm_dir)
    if spec.shm_bytes > free + held:
        raise EnvironmentMissing(
            f"{spec.file}: shm: {human_size(spec.shm_bytes)} does not fit in {shm_dir}: its filesystem has "
            f"{human_size(free)} free and this shard holds {human_size(held)} (fix: lower `shm`, or give the shm "
            "directory more room: --shm-dir on a larger filesystem, docker run --shm-size, the pod's shm sizeLimit)")


def check_writable(directory: Path, what: str, option: str) -> None:
    """Create directory if missing and write a probe file into it; EnvironmentMissing if either fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".imagekit-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EnvironmentMissing(f"the {what} directory {directory} is not writable ({exc.strerror or exc}) "
                                 f"(fix: pass {option} DIR with a writable directory)") from None


def check_environment(spec: PipelineSpec, layout: RunLayout) -> None:
    check_shm(spec, layout.shm_dir)
    check_writable(layout.results_dir, "results", "--results")
    if layout.ssd_dir is not None:
        check_writable(layout.ssd_dir, "ssd checkpoint", "--ssd (or --no-checkpoints)")
    if layout.pv_dir is not None:
        check_writable(layout.pv_dir, "pv checkpoint", "--pv (or --no-checkpoints)")
