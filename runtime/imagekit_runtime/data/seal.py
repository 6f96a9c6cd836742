"""Committed data is read-only from its commit on, and a change to it afterwards is detected.

Steps run as the runtime's user (a locked-down container has no second user to switch to, and neither
has a user's laptop), so permissions alone cannot stop a step that means to write: they stop the step
that writes by mistake. At commit every item is *sealed*: the write bits of the item itself are cleared
(a file output, or a directory output's top directory, so nothing can be added to or removed from it),
and its *seal* is taken: a digest of every entry's path, type, mode, size, inode, mtime and ctime. The
ctime is what a step cannot forge: any write, chmod, rename or utime sets it to now. The seal is kept
in the commit record and checked where the runtime hands data on: a step's inputs when it ends (before
its own outputs are committed), every copy to the results or a checkpoint (after the copy, so a change
during it counts too), data reused from shm by a later run, and all data in shm at the run's end.

The entries inside a directory output keep the modes their step gave them: clearing each one's write
bits would put a chmod per entry on the handoff's critical path (175 ms for 50,500 entries on the
project's machine, against the handoff's 50 ms budget at 50,000 files, docs/bench/checkpoints.md), and
doing it later, off that path, would let a consumer see either mode depending on timing. A change to
them is caught by the seal. Cost: one chmod per output at commit; the seal of a file is one lstat, of a
directory one lstat per entry, taken in the vetting walk's thread (vetting.py), off the critical path.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def what(step: str, data: str) -> str:
    """How a message names a committed item."""
    return f"{data!r} (committed by step {step})"


class Tampered(Exception):
    """Committed data changed after its commit: the message is the one line the run stops with."""


def _entries(root: str) -> list[tuple[str, os.stat_result]]:
    """Every entry of the item, the item first, in a stable order (never through a link)."""
    found = [("", os.lstat(root))]
    if stat.S_ISDIR(found[0][1].st_mode):
        pending = [""]
        while pending:
            relative = pending.pop()
            with os.scandir(os.path.join(root, relative)) as listing:
                children = sorted(listing, key=lambda entry: entry.name)
            for child in children:
                path = os.path.join(relative, child.name)
                info = child.stat(follow_symlinks=False)
                found.append((path, info))
                if stat.S_ISDIR(info.st_mode):
                    pending.append(path)
    return found


def _digest(entries: list[tuple[str, os.stat_result]]) -> str:
    digest = hashlib.sha256()
    for path, info in entries:
        digest.update(f"{path}\0{info.st_mode:o}\0{info.st_size}\0{info.st_ino}\0{info.st_mtime_ns}\0"
                      f"{info.st_ctime_ns}\n".encode())
    return digest.hexdigest()[:32]


def close(item: Path) -> None:
    """Clear the write bits of the item itself: a file, or a directory (its entries keep theirs)."""
    info = os.lstat(item)
    if not stat.S_ISLNK(info.st_mode) and info.st_mode & WRITE_BITS:
        os.chmod(item, stat.S_IMODE(info.st_mode) & ~WRITE_BITS)


def seal(item: Path) -> str:
    """Close the item (above), then take its seal."""
    close(item)
    return seal_of(item)


def seal_of(item: Path) -> str:
    """The item's seal as it is now (FileNotFoundError when it is gone)."""
    return _digest(_entries(os.fspath(item)))


def check(item: Path, expected: str, what: str) -> None:
    """Raise Tampered (naming `what`) when the item is gone or is not as it was sealed."""
    try:
        now = seal_of(item)
    except FileNotFoundError:
        raise Tampered(f"{what} was removed after its commit (committed data is read-only: a step must not "
                       f"write, move or delete another step's data)") from None
    except OSError as exc:
        raise Tampered(f"{what} cannot be read since its commit ({exc.strerror})") from None
    if now != expected:
        raise Tampered(f"{what} changed after its commit (committed data is read-only: a step must not "
                       f"write, move or delete another step's data; fix the step that wrote it)")


def _writable_then_retry(function: object, path: str, _info: object) -> None:
    """rmtree's error handler: a sealed directory holds its entries; open it for the owner and retry once."""
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IMODE(os.lstat(parent).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IMODE(os.lstat(path).st_mode) | stat.S_IWUSR | stat.S_IXUSR)
        shutil.rmtree(path, onerror=_writable_then_retry)
    else:
        os.unlink(path)


def remove(item: Path) -> None:
    """Remove a file or a (possibly sealed) directory tree; nothing when it is gone already."""
    path = os.fspath(item)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=_writable_then_retry)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
