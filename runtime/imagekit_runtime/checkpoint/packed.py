"""A directory checkpoint's small files, links and directories in one uncompressed tar stream.

Creating and syncing 50,000 inodes on a disk costs far more than the bytes they hold,
so a checkpoint of a directory writes

    data.tar   every directory, symlink and file under PACK_BELOW bytes, in walk order
    data/      the files of PACK_BELOW bytes or more, copied as files (sendfile, hashed beside)

and syncs the tar once. The manifest lists every entry with its mode, and every file with
its size and sha256, computed from the bytes as they are written (one pass, streaming).
Verification and restore read the tar as a stream and check each file against the manifest.
"""
from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .filehash import copy_and_hash, hash_bytes, open_no_follow

PACK_BELOW = 1024 * 1024
BLOCK = 512
Entry = dict[str, Any]  # a manifest entry: path, mode, and size + sha256 (file), link (symlink) or dir


class PackMismatch(Exception):
    """The tar stream and the manifest disagree."""


def _read_all(path: str, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        parts: list[bytes] = []
        while True:
            part = os.read(fd, max(size, BLOCK))
            if not part:
                return b"".join(parts)
            parts.append(part)
    finally:
        os.close(fd)


def _walk(root: str, relative: str = "") -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, path, lstat) of every entry below root, parents before children, sorted by name."""
    with os.scandir(root) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        name = f"{relative}/{entry.name}" if relative else entry.name
        info = entry.stat(follow_symlinks=False)
        yield name, entry.path, info
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(entry.path, name)


def _ustar_header(name: str, mode: int, size: int, mtime: int, kind: bytes, link: str) -> bytes | None:
    """A plain ustar header, built directly (tarfile's costs ~40 µs, a third of a small file's checkpoint);
    None when the entry needs PAX (long or non-ASCII names, big sizes): tarfile writes those."""
    try:
        raw_name, raw_link = name.encode("ascii"), link.encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(raw_name) > 100 or len(raw_link) > 100 or not 0 <= mtime < 8 ** 11 or size >= 8 ** 11:
        return None
    header = bytearray(BLOCK)
    header[0:len(raw_name)] = raw_name
    header[100:108] = b"%07o\0" % mode
    header[108:116] = b"%07o\0" % 0  # uid
    header[116:124] = b"%07o\0" % 0  # gid
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"%011o\0" % mtime
    header[148:156] = b" " * 8  # the checksum counts its own field as spaces
    header[156:157] = kind
    header[157:157 + len(raw_link)] = raw_link
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _header(name: str, info: os.stat_result, kind: bytes, size: int = 0, link: str = "") -> bytes:
    if kind == tarfile.DIRTYPE:
        name += "/"
    fast = _ustar_header(name, stat.S_IMODE(info.st_mode), size, int(info.st_mtime), kind, link)
    if fast is not None:
        return fast
    header = tarfile.TarInfo(name)
    header.type = kind
    header.mode = stat.S_IMODE(info.st_mode)
    header.size = size
    header.mtime = int(info.st_mtime)
    header.linkname = link
    return header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def write_packed(source: Path, data_dir: Path, pack: Path) -> list[Entry]:
    """Checkpoint the directory `source`: small entries into `pack`, big files under `data_dir`.

    Returns the manifest entries. The tar is fsynced; the big files are fsynced as they are copied;
    the caller fsyncs the directories and writes the manifest."""
    data_dir.mkdir()
    entries: list[Entry] = []
    with open(pack, "wb", buffering=1024 * 1024) as out:
        for name, path, info in _walk(str(source)):
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode):
                out.write(_header(name, info, tarfile.DIRTYPE))
                entries.append({"path": name, "dir": True, "mode": mode, "size": 0, "packed": True})
            elif stat.S_ISLNK(info.st_mode):
                link = os.readlink(path)
                out.write(_header(name, info, tarfile.SYMTYPE, link=link))
                entries.append({"path": name, "link": link, "size": 0, "packed": True})
            elif info.st_size < PACK_BELOW:
                content = _read_all(path, info.st_size)
                out.write(_header(name, info, tarfile.REGTYPE, size=len(content)))
                out.write(content)
                out.write(_padding(len(content)))
                entries.append({"path": name, "mode": mode, "size": len(content), "sha256": hash_bytes(content),
                                "packed": True})
            else:
                destination = data_dir / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                entries.append({"path": name, "mode": mode, "size": info.st_size,
                                "sha256": copy_and_hash(Path(path), destination)})
        out.write(b"\0" * (2 * BLOCK))
        out.flush()
        os.fsync(out.fileno())
    return entries


def packed_entries(manifest: dict[str, Any]) -> dict[str, Entry]:
    return {entry["path"]: entry for entry in manifest["files"] if entry.get("packed")}


def _members(pack: Path, expected: dict[str, Entry]) -> Iterator[tuple[Entry, tarfile.TarInfo, bytes]]:
    """Each member of the tar with its manifest entry and its content; PackMismatch on any difference."""
    seen: set[str] = set()
    try:
        with open(pack, "rb", opener=open_no_follow) as raw, tarfile.open(fileobj=raw, mode="r|") as stream:
            for member in stream:
                entry = expected.get(member.name)
                if entry is None or member.name in seen:
                    raise PackMismatch(f"{member.name}: in the pack but not in the manifest (or twice)")
                seen.add(member.name)
                content = b""
                if member.isreg():
                    extracted = stream.extractfile(member)
                    content = extracted.read() if extracted is not None else b""
                _check(entry, member, content)
                yield entry, member, content
    except (tarfile.TarError, EOFError) as exc:
        raise PackMismatch(f"the pack is not a whole tar stream ({exc})") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise PackMismatch(f"{missing[0]}: in the manifest but not in the pack ({len(missing)} missing)")


def _check(entry: Entry, member: tarfile.TarInfo, content: bytes) -> None:
    name = member.name
    if entry.get("dir"):
        if not member.isdir():
            raise PackMismatch(f"{name}: not a directory in the pack")
    elif "link" in entry:
        if not member.issym() or member.linkname != entry["link"]:
            raise PackMismatch(f"{name}: a link where the manifest lists none, or another link")
    elif not member.isreg():
        raise PackMismatch(f"{name}: not a file in the pack")
    elif len(content) != entry["size"]:
        raise PackMismatch(f"{name}: size {len(content)}, manifest says {entry['size']}")
    elif hash_bytes(content) != entry["sha256"]:
        raise PackMismatch(f"{name}: sha256 mismatch")


def verify_pack(pack: Path, manifest: dict[str, Any]) -> None:
    """Every packed entry of the manifest is in the tar, with its type, size and sha256; nothing else is."""
    for _entry in _members(pack, packed_entries(manifest)):
        pass


def _safe_target(root: Path, name: str) -> Path:
    parts = name.split("/")
    if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise PackMismatch(f"{name}: not a plain relative path")
    return root.joinpath(*parts)


def unpack(pack: Path, manifest: dict[str, Any], root: Path) -> None:
    """Recreate the packed entries under `root` (which holds the big files already), each verified again."""
    directories: list[tuple[Path, int]] = []
    for entry, member, content in _members(pack, packed_entries(manifest)):
        target = _safe_target(root, member.name)
        if member.isdir():
            target.mkdir(exist_ok=True)
            directories.append((target, entry["mode"]))
        elif member.issym():
            os.symlink(member.linkname, target)
        else:
            _write_new(target, content, entry["mode"])
    for directory, mode in reversed(directories):  # children first: a read-only directory is set last
        os.chmod(directory, mode)


def _write_new(target: Path, content: bytes, mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)

