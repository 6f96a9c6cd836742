"""A filesystem of the bench's own: a fresh ext4 with a journal, in a sparse file mounted through a loop device.

Why: a large part of a cold build is the engine creating the deps layers' files (about 2,000).
How fast a filesystem creates files can depend on what was deleted on it just before, and a bench deletes
a lot between its builds (each round's images). On this project's VM the root filesystem is ext4 *without
a journal* (`/proc/fs/jbd2` lists nothing for it); there ext4 avoids reusing an inode freed in the last
minute (several minutes while its inode table block is still dirty), and each new inode scans past those: `perf`
of `tar -x` of one 57 MB, 1,051-file deps layer puts 60 % of its time in `recently_deleted` under
`__ext4_new_inode`, and the same `tar -x` took 0.12-0.72 s there depending on the minutes before, against
0.07-0.08 s every time on a journaled ext4 (which never makes that check). Which side of the comparison
pays for the previous round's deletions would then decide the ratio.

A journaled ext4, as `mkfs.ext4` makes by default and as a CI runner's or workstation's disk is, removes
that: both sides create their files on a filesystem that behaves the same in every round. `--storage
here` (bench_build.py) keeps the work directory on the machine's own filesystem instead.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from imagekit_core import proc
from imagekit_core.errors import CommandFailed

SIZE = "32G"  # sparse: the file holds what the bench writes (a few GB for 5 rounds), not this


class ScratchUnavailable(RuntimeError):
    """The scratch filesystem can't be made here (not root, no mkfs.ext4, no loop device)."""


@contextlib.contextmanager
def journaled_scratch(parent: Path, size: str = SIZE) -> Iterator[Path]:
    """A fresh, empty, journaled ext4 mounted at parent/mnt for the duration; unmounted and its file removed
    afterwards (whatever the engines left on it goes with it)."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        raise ScratchUnavailable("the scratch filesystem needs root and mkfs.ext4 (e2fsprogs); "
                                 "run as root or pass --storage here")
    image = parent / "scratch.ext4"
    mount_point = parent / "mnt"
    mount_point.mkdir(parents=True, exist_ok=True)
    try:
        try:
            proc.run(["truncate", "--size", size, image])
            proc.run(["mkfs.ext4", "-q", "-F", "-L", "imagekit-bench", image])
            # noinit_itable: no background zeroing of inode tables while the bench measures (a fresh
            # filesystem's uninitialised groups are marked as such; nothing reads them).
            proc.run(["mount", "-o", "loop,noinit_itable", image, mount_point])
        except CommandFailed as exc:
            raise ScratchUnavailable(f"making the scratch filesystem failed: {exc}; pass --storage here") from None
        try:
            yield mount_point
        finally:
            _unmount(mount_point)
    finally:
        image.unlink(missing_ok=True)


def _unmount(mount_point: Path) -> None:
    """Engines may hold a mount below it for a moment after they stop: a few tries, then a lazy unmount."""
    proc.run(["umount", "--recursive", mount_point], check=False)
    for _ in range(20):
        if not os.path.ismount(mount_point):
            return
        time.sleep(0.25)
        proc.run(["umount", mount_point], check=False)
    proc.run(["umount", "--lazy", mount_point], check=False)


def files_per_second(directory: Path, count: int = 500) -> float:
    """How fast directory's filesystem creates small files now: count files of 4 KiB each, kept (removing
    them would slow the next creations on a filesystem without a journal)."""
    probe = directory / f"creation-probe-{time.monotonic_ns()}"
    probe.mkdir(parents=True)
    data = b"\0" * 4096
    started = time.perf_counter()
    for number in range(count):
        with open(probe / str(number), "wb") as handle:
            handle.write(data)
    return count / (time.perf_counter() - started)
