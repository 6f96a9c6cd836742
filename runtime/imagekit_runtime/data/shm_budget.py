"""The pipeline's `shm` enforced at commit, so a run that passes on a host fits the pod it is sized for.

On a host, /dev/shm is usually larger than the pipeline's `shm`; in a pod the shm volume's
sizeLimit is exactly `shm`, and a step writing past it gets ENOSPC. A commit that would take
the committed data past `shm` therefore fails the step with the message ENOSPC gives in a pod;
with --shm-soft it is committed and the message becomes a warning.

Counted: the blocks the committed outputs take (commit records, st_blocks × 512), not their
apparent sizes: on tmpfs every file takes at least a page.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from imagekit_core.spec.quantity import human_size

from .sandbox import OutputRefused

log = logging.getLogger("imagekit.runtime")
ENOSPC_TEXT = "No space left on device"
SHM_SOFT_HELP = ("a commit past the pipeline's `shm` warns instead of failing the step "
                 "(in a pod of that size the step would fail with ENOSPC)")
SOFT_NOTE = "committed anyway (--shm-soft); in a pod of this `shm` the step fails"


def shm_usage(path: Path) -> tuple[int, int]:
    """(size, used) bytes of the filesystem holding path."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize, (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def shm_full_message(shm_dir: Path, size: int, used: int, committed_bytes: int) -> str:
    """The one message for a full shm: ENOSPC in a pod, and a commit past the pipeline's `shm` on a host."""
    return (f"shared memory is full ({ENOSPC_TEXT}) in {shm_dir}: "
            f"shm size {human_size(size)}, {human_size(used)} in use, "
            f"{human_size(committed_bytes)} of it committed pipeline data; "
            f"raise `shm` in the pipeline or the size of {shm_dir}")


class ShmExceeded(OutputRefused):
    """A step's outputs would take the committed data past the pipeline's `shm`."""


@dataclass
class ShmBudget:
    limit: int  # the pipeline's shm, bytes
    soft: bool  # --shm-soft: warn instead of failing
    shm_dir: Path
    warnings: list[str]

    def admit(self, step: str, committed: int, adding: int) -> None:
        """Let `adding` bytes of `step`'s outputs join `committed` bytes in shm, or refuse them (ShmExceeded)."""
        used = committed + adding
        if used <= self.limit:
            return
        message = shm_full_message(self.shm_dir, self.limit, used, committed)
        if not self.soft:
            raise ShmExceeded(message)
        warning = f"step {step}: {message}: {SOFT_NOTE}"
        log.warning("warning: %s", warning)
        self.warnings.append(warning)
