"""Deterministic layer tarballs: same files in, same bytes out, on any machine.

Entries are sorted, owned by root, stamped with one fixed time, and given modes
that let any user read them (0644, or 0755 for directories and executables):
a file left 0600 in a step package must not make the step fail for the image's
non-root user. Interpreter caches (`__pycache__`, `*.pyc` beside sources) never
enter a layer.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

# 1980-01-01: the earliest time zip (and so wheels and some tools) can represent.
# SOURCE_DATE_EPOCH changes image metadata, never file times, so layers stay cacheable.
FIXED_MTIME = 315532800
SKIPPED_DIRS = {"__pycache__", ".git", ".pytest_cache", ".venv", ".mypy_cache", ".hg", ".svn"}


def skip_file(name: str) -> bool:
    return name.endswith((".pyc", ".pyo")) or name == ".DS_Store"


@dataclass(frozen=True)
class Mapping:
    """Copy the tree at `source` to `target` (an absolute path in the image)."""

    source: Path
    target: PurePosixPath


@dataclass(frozen=True)
class LayerTar:
    path: Path
    sha256: str  # of the uncompressed tar: what an engine would call its diff ID if it kept our bytes
    size: int  # bytes of file content in the layer


def _parents(target: PurePosixPath) -> list[PurePosixPath]:
    return [parent for parent in reversed(target.parents) if str(parent) != "/"]


def _entry_name(path: PurePosixPath) -> str:
    return str(path).lstrip("/")


def _walk(source: Path) -> Iterable[tuple[Path, PurePosixPath]]:
    """(absolute host path, path relative to source) for everything under source, sorted."""
    for root, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        root_path = Path(root)
        relative_root = PurePosixPath(root_path.relative_to(source).as_posix())
        entries = sorted([(d, True) for d in dirs] + [(f, False) for f in files if not skip_file(f)])
        for name, _ in entries:
            yield root_path / name, relative_root / name


def _info(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_layer(mappings: Iterable[Mapping], destination: Path) -> LayerTar:
    """Write one layer tar holding every mapping, deterministically; return its digest and content size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    entries: dict[str, tuple[tarfile.TarInfo, Path | None]] = {}
    for mapping in mappings:
        for parent in [*_parents(mapping.target), mapping.target]:
            entries.setdefault(_entry_name(parent), (_info(_entry_name(parent), tarfile.DIRTYPE, 0o755), None))
        if not mapping.source.is_dir():
            raise FileNotFoundError(f"{mapping.source} is not a directory")
        for host_path, relative in _walk(mapping.source):
            name = _entry_name(mapping.target / relative)
            st = host_path.lstat()
            if stat.S_ISLNK(st.st_mode):
                entries[name] = (_info(name, tarfile.SYMTYPE, 0o777, linkname=os.readlink(host_path)), None)
            elif stat.S_ISDIR(st.st_mode):
                entries[name] = (_info(name, tarfile.DIRTYPE, 0o755), None)
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                entries[name] = (_info(name, tarfile.REGTYPE, mode, size=st.st_size), host_path)
            # sockets, fifos and devices have no place in an image layer
    content_size = 0
    with tarfile.open(temporary, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            info, host_path = entries[name]
            if host_path is None:
                tar.addfile(info)
            else:
                with open(host_path, "rb") as content:
                    tar.addfile(info, content)
                content_size += info.size
    digest = hashlib.sha256()
    with open(temporary, "rb") as written:
        for block in iter(lambda: written.read(1 << 20), b""):
            digest.update(block)
    os.replace(temporary, destination)
    return LayerTar(path=destination, sha256="sha256:" + digest.hexdigest(), size=content_size)


def link_or_copy(source: Path, destination: Path) -> None:
    """Put a layer tarball (or any content-addressed file) at destination: a hard link where the
    filesystem allows one, else a copy. An existing destination already holds the same bytes."""
    if destination.exists():
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def tree_size(source: Path) -> int:
    """Bytes of file content under source, as a layer would hold them."""
    total = 0
    for host_path, _ in _walk(source):
        st = host_path.lstat()
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total
