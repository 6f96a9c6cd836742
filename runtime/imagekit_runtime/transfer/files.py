"""file:// sources and sinks: a path on a mounted volume.

A source's identity is each file's size, mtime and inode; it is copied into shm (copy_file_range /
sendfile through shutil). A sink is written as a temporary name then renamed into place; a directory's
SINK_SUCCESS_MARKER is removed first and written last.
"""
from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

from imagekit_core.contract import SINK_SUCCESS_MARKER, TEMPORARY_PREFIX

from .manifest import Entry, Manifest


def local_path(url: str) -> Path:
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _entry(path: Path, relative: str) -> Entry:
    info = path.stat()
    return Entry(relative, info.st_size, f"{info.st_mtime_ns}-{info.st_ino}")


def probe(manifest: Manifest) -> tuple[Entry, ...]:
    path = local_path(manifest.url)
    try:
        if manifest.prefix:
            if not path.is_dir():
                raise manifest.failed("directory not found" if not path.exists() else "not a directory")
            found = sorted(path.rglob("*"))
            special = next((item for item in found if not item.is_file() and not item.is_dir()), None)
            if special is not None:  # a pipe would block the copy, a device never end
                raise manifest.failed(f"{special.relative_to(path)} is not a regular file (a pipe, a device or a "
                                      "socket): a source directory holds files and directories only")
            return tuple(_entry(file, file.relative_to(path).as_posix()) for file in found if file.is_file())
        if not path.is_file():
            raise manifest.failed("file not found" if not path.exists() else "not a file")
        return (_entry(path, ""),)
    except PermissionError:
        raise manifest.failed("access denied") from None


def fetch(manifest: Manifest, destination: Path) -> int:
    path = local_path(manifest.url)
    try:
        if manifest.prefix:
            shutil.copytree(path, destination, symlinks=False)
        else:
            shutil.copyfile(path, destination)
    except FileNotFoundError:
        raise manifest.failed("not found (removed since the run was planned)") from None
    except PermissionError:
        raise manifest.failed("access denied") from None
    except (shutil.Error, OSError) as exc:  # a special file appeared since the plan, a full shm, …
        raise manifest.failed(f"could not be copied ({exc})") from None
    return manifest.size


def _put(source: Path, target: Path) -> None:
    """source copied to target, whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(TEMPORARY_PREFIX + target.name)
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def upload(manifest: Manifest, source: Path) -> int:
    target = local_path(manifest.url)
    try:
        if not source.is_dir():
            _put(source, target / manifest.name if manifest.url.endswith("/") else target)
            return source.stat().st_size
        (target / SINK_SUCCESS_MARKER).unlink(missing_ok=True)
        files = [path for path in sorted(source.rglob("*")) if path.is_file()]
        for path in files:
            _put(path, target / path.relative_to(source))
        (target / SINK_SUCCESS_MARKER).touch()
    except PermissionError:
        raise manifest.failed("access denied") from None
    return sum(path.stat().st_size for path in files)
