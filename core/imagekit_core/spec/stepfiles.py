"""The files that make up a step package, defined once.

Both the step's content key (`StepSpec.content_hash`, which decides whether a checkpoint
still holds) and its code layer (imagekit/build/tarball.py) walk a package with `walk`, and
the key hashes exactly what the layer records of each entry: its path, its kind, whether a
file is executable, a symlink's target and a file's bytes. So a change to a package changes
its layer if and only if it changes its key. Version control, interpreter caches, virtual
environments, editor and desktop litter are not part of a package.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr", "CVS", "_darcs",  # version control
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".nox", ".ipynb_checkpoints",
    ".venv",  # a virtual environment made beside the code
    ".idea", ".vscode",  # editor settings
})
IGNORED_SUFFIXES = (
    ".pyc", ".pyo",  # interpreter caches beside their sources
    ".swp", ".swo", ".swx", "~",  # vim swap files, editor backups
)
IGNORED_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


class Kind(Enum):
    directory = "dir"
    file = "file"
    symlink = "symlink"


@dataclass(frozen=True)
class PackageEntry:
    path: Path  # on the host
    relative: PurePosixPath  # inside the package
    kind: Kind
    executable: bool = False  # a file with any execute bit
    size: int = 0  # a file's bytes
    target: str = ""  # a symlink's target, as written

    def fingerprint(self) -> bytes:
        """All a layer records of this entry (content as its hash), as the key hashes it."""
        head = f"{self.relative.as_posix()}\0{self.kind.value}\0{int(self.executable)}\0{self.target}\0"
        content = file_digest(self.path) if self.kind is Kind.file else b""
        return head.encode() + content


def ignored_dir(name: str) -> bool:
    return name in IGNORED_DIRS


def ignored_file(name: str) -> bool:
    """Editor lock and autosave files (`.#x`, `#x#`) too."""
    return (name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES) or name.startswith(".#")
            or (len(name) > 1 and name.startswith("#") and name.endswith("#")))


def walk(directory: Path) -> Iterator[PackageEntry]:
    """Every entry of the package at directory, in sorted order, parents before children.
    Symlinks are entries of their own (a linked directory is not entered); sockets, fifos and
    devices are not part of a package."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if not ignored_dir(name))
        root_path = Path(root)
        relative_root = PurePosixPath(root_path.relative_to(directory).as_posix())
        names = sorted([*dirs, *(name for name in files if not ignored_file(name))])
        for name in names:
            entry = _entry(root_path / name, relative_root / name)
            if entry is not None:
                yield entry


def _entry(path: Path, relative: PurePosixPath) -> PackageEntry | None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return PackageEntry(path, relative, Kind.symlink, target=os.readlink(path))
    if stat.S_ISDIR(st.st_mode):
        return PackageEntry(path, relative, Kind.directory)
    if stat.S_ISREG(st.st_mode):
        return PackageEntry(path, relative, Kind.file, executable=bool(st.st_mode & 0o111), size=st.st_size)
    return None


def file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as content:
        for block in iter(lambda: content.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def package_digest(directory: Path) -> str:
    """sha256 over the fingerprints of every entry of the package."""
    digest = hashlib.sha256()
    for entry in walk(directory):
        digest.update(entry.fingerprint())
    return digest.hexdigest()
