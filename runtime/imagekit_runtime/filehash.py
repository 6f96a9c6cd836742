"""Copying and hashing files for checkpoints: the sha256 a manifest lists, copies made durable.

A file's sha256 is that of its bytes up to CHUNK; above, the sha256 of the
concatenated sha256s of its CHUNK-sized pieces, hashed on two threads.
Nothing here reads through a link.
"""
from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HASH_IN_THREAD_FROM = 4 * 1024 * 1024  # smaller files: a thread costs more than it saves
CHUNK = 32 * 1024 * 1024  # files above this are hashed as a tree of chunk hashes
HASH_THREADS = 2
HASH_DESCRIPTION = f"sha256, chunked above {CHUNK} bytes"


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as written:
        os.fsync(written.fileno())


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


def copy_and_hash(source: Path, destination: Path, durable: bool = True) -> str:
    """Copy one file, returning the sha256 of the source; fsync the copy when durable.

    The kernel copies (sendfile) while another thread hashes the source through an
    mmap, so a checkpoint costs about what a plain copy does. The source is committed
    data, which never changes; restore verifies the copy against this checksum.
    """
    size = source.lstat().st_size
    if size < HASH_IN_THREAD_FROM:
        digest = hash_file(source)
        shutil.copyfile(source, destination, follow_symlinks=False)
    else:
        result: dict[str, str | BaseException] = {}

        def hash_source() -> None:
            try:
                result["digest"] = hash_file(source)
            except BaseException as exc:  # re-raised in the caller
                result["error"] = exc

        hasher = threading.Thread(target=hash_source, name="imagekit-hash")
        hasher.start()
        try:
            shutil.copyfile(source, destination, follow_symlinks=False)
            if durable:  # flush to disk while the hash is still being computed
                fsync_file(destination)
        finally:
            hasher.join()
        if "error" in result:
            raise result["error"]  # type: ignore[misc]
        digest = result["digest"]  # type: ignore[assignment]
        durable = False
    if durable:
        fsync_file(destination)
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
