"""Copying and hashing files for checkpoints: the sha256 a manifest lists, copies made durable.

A file's sha256 is that of its bytes up to CHUNK; above, the sha256 of the
concatenated sha256s of its CHUNK-sized pieces, hashed on two threads.
Nothing here reads through a link.
"""
from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HASH_IN_THREAD_FROM = 4 * 1024 * 1024  # smaller files: a thread costs more than it saves
CHUNK = 32 * 1024 * 1024  # files above this are hashed as a tree of chunk hashes
HASH_THREADS = 2
WRITEBACK_STEP = 8 * 1024 * 1024  # a copy starts writing to disk every this many bytes
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


def copy_durably(source: Path, destination: Path) -> None:
    """Copy one file and fsync the copy, the disk writing while the copy proceeds.

    The kernel copies (sendfile) WRITEBACK_STEP bytes at a time; after each step,
    posix_fadvise(DONTNEED) starts writing that range to disk (Linux starts writeback
    of a range's dirty pages, and drops them once clean: the copy is not read back
    from cache). The closing fsync then waits for the last steps, not for the whole
    file as after a plain copy. Durability is the fsync's, as before.
    """
    with open(source, "rb", opener=open_no_follow) as reader, open(destination, "wb", buffering=0) as writer:
        size = os.fstat(reader.fileno()).st_size
        offset = 0
        kernel_copy = True
        while offset < size:
            count = min(WRITEBACK_STEP, size - offset)
            if kernel_copy:
                try:
                    sent = os.sendfile(writer.fileno(), reader.fileno(), offset, count)
                except OSError as exc:  # a file system that can't splice: copy through memory
                    if offset or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    kernel_copy = False
                    continue
            else:
                sent = writer.write(os.pread(reader.fileno(), count, offset))
            if sent == 0:  # the source shrank (committed data never does): the copy will not verify
                break
            os.posix_fadvise(writer.fileno(), offset, sent, os.POSIX_FADV_DONTNEED)
            offset += sent
        os.fsync(writer.fileno())


def copy_and_hash(source: Path, destination: Path) -> str:
    """Copy one file durably (copy_durably), returning the sha256 of the source.

    Another thread hashes the source through an mmap while the kernel copies it,
    so a checkpoint costs about what a plain copy does. The source is committed
    data, which never changes; restore verifies the copy against this checksum.
    """
    if source.lstat().st_size < HASH_IN_THREAD_FROM:
        digest = hash_file(source)
        copy_durably(source, destination)
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagekit-hash") as hasher:
            hashed = hasher.submit(hash_file, source)
            copy_durably(source, destination)
            digest = hashed.result()
    shutil.copymode(source, destination, follow_symlinks=False)
    return digest


def hash_file(path: Path) -> str:
    """sha256 of a file; above CHUNK bytes, the sha256 of its chunks' sha256s, hashed on two threads.

    One sha256 stream runs at about the speed of a disk copy; chunks let both cores
    hash, so a checkpoint (and the verification on restore) keeps up with a plain copy.
    """
    with open(path, "rb", opener=open_no_follow) as reader:
        size = os.fstat(reader.fileno()).st_size
        if size == 0:
            return hashlib.sha256().hexdigest()
        with mmap.mmap(reader.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                if size <= CHUNK:
                    return hashlib.sha256(view).hexdigest()
                chunks = [view[offset:offset + CHUNK] for offset in range(0, size, CHUNK)]
                with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="imagekit-hash") as pool:
                    digests = list(pool.map(lambda chunk: hashlib.sha256(chunk).digest(), chunks))
                for chunk in chunks:
                    chunk.release()
                return hashlib.sha256(b"".join(digests)).hexdigest()
            finally:
                view.release()


def walk_files(root: Path) -> Iterator[Path]:
    """Files and symlinks (to files or directories) of a tree, in a stable order; not following links."""
    if root.is_symlink() or not root.is_dir():
        yield root
        return
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            yield Path(directory) / name
