"""Deterministic layer tarballs: same files in, same bytes out, on any machine.

Entries are sorted, owned by root, stamped with one fixed time, and given modes
that let any user read them (0644, or 0755 for directories and executables):
a file left 0600 in a step package must not make the step fail for the image's
non-root user. A layer holds a tree's files as imagekit_runtime.stepfiles walks
them (no version control, interpreter caches or editor litter), so a step's code
layer changes exactly when its content key does.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

from imagekit_core.spec.stepfiles import Kind, PackageEntry, walk

from .bytecode import Bytecode
from .unpack import PlacedFile
from .wheeltree import TreeEntry, WheelTree

# 1980-01-01: the earliest time zip (and so wheels and some tools) can represent.
# SOURCE_DATE_EPOCH changes image metadata, never file times, so layers stay cacheable.
FIXED_MTIME = 315532800
# Bump when a layer's bytes change for the same files (entry order, headers, modes): layer keys include it.
LAYER_FORMAT = "1"
# Content is copied into a layer 1 MiB at a time (tarfile's default: 16 KiB): writing numpy's layer from its
# wheel then makes a sixteenth of the Python calls, which hold the GIL while two steps' layers are written.
COPY_BUFFER = 1 << 20


@dataclass(frozen=True)
class Mapping:
    """Copy the tree at `source` to `target` (an absolute path in the image): a directory, a deps tree
    described by its wheels (wheeltree.py), which gives the same layer without being unpacked, or the
    bytecode compiled for one of those (bytecode.py: its __pycache__ directories, which a walk leaves out)."""

    source: Path | WheelTree | Bytecode
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


# Where an entry's content comes from: explicit bytes, a host file, a file of a tree described by its wheels.
Content = bytes | Path | tuple[WheelTree, PlacedFile] | None


def _tar_entry(name: str, entry: PackageEntry) -> tuple[tarfile.TarInfo, Content]:
    """The tar header of a package entry, and the host file its content comes from (files only)."""
    return (_header(name, entry.kind, entry.executable, entry.size, entry.target),
            entry.path if entry.kind is Kind.file else None)


def _described_entry(name: str, tree: WheelTree, entry: TreeEntry) -> tuple[tarfile.TarInfo, Content]:
    """The tar header of an entry of a tree described by its wheels (as _tar_entry for the unpacked tree)."""
    return (_header(name, entry.kind, entry.executable, entry.size),
            (tree, entry.file) if entry.file is not None else None)


def _header(name: str, kind: Kind, executable: bool, size: int, target: str = "") -> tarfile.TarInfo:
    """A tree entry's tar header: modes normalised (0755 for directories and executables, else 0644)."""
    if kind is Kind.symlink:
        return _info(name, tarfile.SYMTYPE, 0o777, linkname=target)
    if kind is Kind.directory:
        return _info(name, tarfile.DIRTYPE, 0o755)
    return _info(name, tarfile.REGTYPE, 0o755 if executable else 0o644, size=size)


def _open(content: bytes | Path | tuple[WheelTree, PlacedFile]) -> IO[bytes]:
    if isinstance(content, bytes):
        return io.BytesIO(content)
    if isinstance(content, Path):
        return open(content, "rb")
    tree, placed = content
    return tree.open(placed)


@dataclass(frozen=True)
class Entry:
    """One file, directory or symlink a layer holds, given explicitly (not copied from a tree)."""

    path: PurePosixPath  # absolute, in the image
    kind: Kind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    content: bytes = b""  # files
    target: str = ""  # symlinks


def _explicit(entry: Entry) -> tuple[tarfile.TarInfo, Content]:
    name = _entry_name(entry.path)
    kind = {Kind.file: tarfile.REGTYPE, Kind.directory: tarfile.DIRTYPE, Kind.symlink: tarfile.SYMTYPE}[entry.kind]
    info = _info(name, kind, entry.mode, size=len(entry.content) if entry.kind is Kind.file else 0,
                 linkname=entry.target)
    info.uid, info.gid = entry.uid, entry.gid
    return info, entry.content if entry.kind is Kind.file else None


def write_layer(mappings: Iterable[Mapping], destination: Path, extra: Iterable[Entry] = ()) -> LayerTar:
    """Write one layer tar holding every mapping (and the explicit entries, which win over a mapping's
    and over the parents a mapping implies), deterministically; return its digest and content size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer: two builds may write the same content-addressed tarball at once.
    temporary = destination.with_name(f"{destination.name}.{os.getpid()}.{threading.get_ident()}.part")
    entries: dict[str, tuple[tarfile.TarInfo, Content]] = {}
    wheel_trees = []
    for mapping in mappings:
        for parent in [*_parents(mapping.target), mapping.target]:
            entries.setdefault(_entry_name(parent), (_info(_entry_name(parent), tarfile.DIRTYPE, 0o755), None))
        if isinstance(mapping.source, WheelTree):
            wheel_trees.append(mapping.source)
            for described in mapping.source.entries():
                name = _entry_name(mapping.target / described.relative)
                entries[name] = _described_entry(name, mapping.source, described)
            continue
        if isinstance(mapping.source, Bytecode):
            for relative, path in mapping.source.files():
                name = _entry_name(mapping.target / relative)
                for parent in _parents(mapping.target / relative):
                    entries.setdefault(_entry_name(parent), (_info(_entry_name(parent), tarfile.DIRTYPE, 0o755), None))
                entries[name] = (_info(name, tarfile.REGTYPE, 0o644, size=path.stat().st_size), path)
            continue
        if not mapping.source.is_dir():
            raise FileNotFoundError(f"{mapping.source} is not a directory")
        for entry in walk(mapping.source):
            name = _entry_name(mapping.target / entry.relative)
            entries[name] = _tar_entry(name, entry)
    for explicit in extra:
        for parent in _parents(explicit.path):
            entries.setdefault(_entry_name(parent), (_info(_entry_name(parent), tarfile.DIRTYPE, 0o755), None))
        entries[_entry_name(explicit.path)] = _explicit(explicit)
    content_size = 0
    try:
        with open(temporary, "wb") as raw, _Hashing(raw) as hashed, \
                tarfile.TarFile(fileobj=hashed, mode="w", format=tarfile.PAX_FORMAT,
                                copybufsize=COPY_BUFFER) as tar:
            for name in sorted(entries):
                info, content = entries[name]
                if content is None:
                    tar.addfile(info)
                    continue
                with _open(content) as handle:
                    tar.addfile(info, handle)
                content_size += info.size
    finally:
        for tree in wheel_trees:
            tree.close()
    os.replace(temporary, destination)
    return LayerTar(path=destination, sha256="sha256:" + hashed.digest.hexdigest(), size=content_size)


class _Hashing(io.RawIOBase):
    """A file written through: the sha256 of every byte is kept as they go (no second read)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.raw.tell()

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def close(self) -> None:  # the tar closes its file object; the real file is closed by its owner
        super().close()


def link_or_copy(source: Path, destination: Path) -> None:
    """Put a layer tarball (or any content-addressed file) at destination: a hard link where the
    filesystem allows one, else a copy. An existing destination already holds the same bytes."""
    if destination.exists():
        return
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)


def tree_size(source: Path | WheelTree | Bytecode) -> int:
    """Bytes of file content under source, as a layer would hold them."""
    if isinstance(source, WheelTree):
        return source.size()
    if isinstance(source, Bytecode):
        return sum(path.stat().st_size for _, path in source.files())
    return sum(entry.size for entry in walk(source))
