"""Copying and hashing files for checkpoints: the sha256 a manifest lists, copies made durable.

A file's sha256 is that of its bytes up to CHUNK; above, the sha256 of the
concatenated sha256s of its CHUNK-sized pieces, hashed on two threads.
Nothing here reads through a link.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import mmap
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

HASH_IN_THREAD_FROM = 4 * 1024 * 1024  # smaller files: a thread costs more than it saves
CHUNK = 32 * 1024 * 1024  # files above this are hashed as a tree of chunk hashes
HASH_THREADS = 2
WRITE_STEP = 32 * 1024 * 1024  # a copy is written (and starts its way to disk) this many bytes at a time
DIRECT_ALIGN = 4096  # O_DIRECT writes whole blocks from aligned memory: a mapping is page-aligned
O_DIRECT: int = getattr(os, "O_DIRECT", 0)  # Linux; elsewhere copies go through the cache
HASH_DESCRIPTION = f"sha256, chunked above {CHUNK} bytes"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)  # a checkpoint never reads through a link


def hash_bytes(content: bytes) -> str:
    """sha256 of bytes held in memory, as hash_file would give for a file of them (content ≤ CHUNK)."""
    return hashlib.sha256(content).hexdigest()


def write_durably(content: memoryview, destination: Path) -> None:
    """Write bytes to a new file and fsync it, the disk writing while the copy proceeds.

    Where the file system allows, the bytes go from memory straight to disk (O_DIRECT,
    WRITE_STEP at a time: the device gets the request whole): no copy into the page
    cache, so the CPU is left to the hash. Elsewhere, and for a last piece smaller than
    a block, written through the cache, posix_fadvise(DONTNEED) starts the disk write
    of each piece at once (and drops the pages once clean). Either way the closing
    fsync waits for the last piece, not for the whole file; durability is the fsync's.
    """
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        direct = _set_direct(fd, bool(O_DIRECT))
        offset, size = 0, len(content)
        while offset < size:
            end = min(offset + WRITE_STEP, size)
            if direct and (end - offset) % DIRECT_ALIGN:  # the tail, not a whole block
                direct = _set_direct(fd, False)
            try:
                written = os.write(fd, content[offset:end])
            except OSError as exc:  # alignment the device won't take: through the cache
                if not direct or exc.errno != errno.EINVAL:
                    raise
                direct = _set_direct(fd, False)
                continue
            if not direct:
                os.posix_fadvise(fd, offset, written, os.POSIX_FADV_DONTNEED)
            offset += written
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for fd; whether it is on (a file system may refuse it)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | O_DIRECT if on else flags & ~O_DIRECT)
    except OSError:
        return False
    return on


def copy_and_hash(source: Path, destination: Path) -> str:
    """Copy one file durably (write_durably), returning the sha256 of the source.

    The source is mapped once: other threads hash it while the copy is written from
    the same pages, so a checkpoint costs about what a plain copy + fsync does. The
    source is committed data, which never changes; restore verifies the copy against
    this checksum.
    """
    with _mapped(source) as content:
        if len(content) < HASH_IN_THREAD_FROM:
            digest = hash_content(content)
            write_durably(content, destination)
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagekit-hash") as hasher:
                hashed = hasher.submit(hash_content, content)
                write_durably(content, destination)
                digest = hashed.result()
    shutil.copymode(source, destination, follow_symlinks=False)
    return digest


@contextmanager
def _mapped(path: Path) -> Iterator[memoryview]:
    """A file's bytes, mapped read-only (never through a link)."""
    with open(path, "rb", opener=open_no_follow) as reader:
        if os.fstat(reader.fileno()).st_size == 0:  # an empty file can't be mapped
            yield memoryview(b"")
            return
        with mmap.mmap(reader.fileno(), 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            yield view


def hash_file(path: Path) -> str:
    """sha256 of a file, as hash_content gives (restore verifies a copy with it)."""
    with _mapped(path) as content:
        return hash_content(content)


def hash_content(content: memoryview) -> str:
    """sha256 of bytes; above CHUNK bytes, the sha256 of its chunks' sha256s, hashed on two threads.

    One sha256 stream runs at about the speed of a disk copy; chunks let both cores
    hash, so a checkpoint (and the verification on restore) keeps up with a plain copy.
    """
    if len(content) <= CHUNK:
        return hashlib.sha256(content).hexdigest()
    chunks = [content[offset:offset + CHUNK] for offset in range(0, len(content), CHUNK)]
    try:
        with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="imagekit-hash") as pool:
            digests = list(pool.map(lambda chunk: hashlib.sha256(chunk).digest(), chunks))
    finally:
        for chunk in chunks:
            chunk.release()
    return hashlib.sha256(b"".join(digests)).hexdigest()


def walk_files(root: Path) -> Iterator[Path]:
    """Files and symlinks (to files or directories) of a tree, in a stable order; not following links."""
    if root.is_symlink() or not root.is_dir():
        yield root
        return
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            yield Path(directory) / name
