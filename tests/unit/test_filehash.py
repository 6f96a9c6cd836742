"""The checkpoint copier's copy and checksum: the bytes and mode arrive whole, the sha256 is the manifest's."""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path

import pytest

from imagekit_runtime.checkpoint import filehash


def tree_sha256(content: bytes, chunk: int) -> str:
    """The manifest's hash, computed independently: plain sha256 up to `chunk`, else sha256 of the chunks' sha256s."""
    if len(content) <= chunk:
        return hashlib.sha256(content).hexdigest()
    digests = b"".join(hashlib.sha256(content[at:at + chunk]).digest() for at in range(0, len(content), chunk))
    return hashlib.sha256(digests).hexdigest()


@pytest.mark.parametrize("size", [0, 1, 4095, 10_000, 70_001])
def test_copy_and_hash_copies_every_byte_in_steps_and_returns_the_sha256(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    # small steps and chunks, and the hash on its own thread, so the stepped copy and the tree hash are exercised
    monkeypatch.setattr(filehash, "WRITE_STEP", 4096)
    monkeypatch.setattr(filehash, "CHUNK", 16_384)
    monkeypatch.setattr(filehash, "HASH_IN_THREAD_FROM", 5000)
    content = os.urandom(size)
    source = tmp_path / "source"
    source.write_bytes(content)
    source.chmod(0o751)
    digest = filehash.copy_and_hash(source, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == content
    assert (tmp_path / "copy").stat().st_mode & 0o7777 == 0o751
    assert digest == tree_sha256(content, 16_384)
    assert filehash.hash_file(tmp_path / "copy") == digest


def test_a_big_file_is_hashed_as_a_tree_of_chunks(tmp_path: Path) -> None:
    content = os.urandom(filehash.CHUNK + 12_345)
    source = tmp_path / "source"
    source.write_bytes(content)
    digest = filehash.copy_and_hash(source, tmp_path / "copy")
    assert digest == tree_sha256(content, filehash.CHUNK) != hashlib.sha256(content).hexdigest()
    assert (tmp_path / "copy").read_bytes() == content


def test_the_copy_never_reads_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"outside")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(OSError):
        filehash.copy_and_hash(tmp_path / "link", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()


@pytest.mark.parametrize("refusal", ["open", "write"])
def test_a_file_system_without_direct_writes_gets_the_copy_through_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str) -> None:
    real_fcntl, real_write = fcntl.fcntl, os.write
    direct_writes: list[int] = []

    def refusing_fcntl(fd: int, command: int, flags: int = 0) -> int:
        if refusal == "open" and command == fcntl.F_SETFL and flags & filehash.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_fcntl(fd, command, flags)

    def write(fd: int, data: memoryview) -> int:
        if real_fcntl(fd, fcntl.F_GETFL) & filehash.O_DIRECT:
            direct_writes.append(len(data))
            if refusal == "write":
                raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(fcntl, "fcntl", refusing_fcntl)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(filehash, "WRITE_STEP", 8192)
    content = os.urandom(30_001)
    (tmp_path / "source").write_bytes(content)
    assert filehash.copy_and_hash(tmp_path / "source", tmp_path / "copy") == hashlib.sha256(content).hexdigest()
    assert (tmp_path / "copy").read_bytes() == content
    assert direct_writes == ([] if refusal == "open" else [8192])


def test_whole_blocks_are_written_directly_and_the_tail_through_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    writes: list[tuple[int, bool]] = []

    def write(fd: int, data: memoryview) -> int:
        writes.append((len(data), bool(fcntl.fcntl(fd, fcntl.F_GETFL) & filehash.O_DIRECT)))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(filehash, "WRITE_STEP", 8192)
    content = os.urandom(2 * 8192 + 100)
    (tmp_path / "source").write_bytes(content)
    filehash.copy_and_hash(tmp_path / "source", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == content
    probe = os.open(tmp_path / "copy", os.O_RDONLY)
    direct = filehash._set_direct(probe, True)  # does this file system take direct writes?
    os.close(probe)
    assert writes == [(8192, direct), (8192, direct), (100, False)]
