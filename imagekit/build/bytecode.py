"""Bytecode for a layer's Python files, compiled at build time for the image's Python: a step then imports
its dependencies and its code without compiling them (its runtime sets PYTHONDONTWRITEBYTECODE, so what a
step compiles is never kept, and every start paid for it again).

The .pyc files are reproducible, so layers keep their digests from build to build and engine to engine:
- `--invalidation-mode unchecked-hash`: no source time in the header (the source's hash instead), and the
  interpreter does not check it: an image's files never change under it;
- the path the image sees is compiled in (`-d`), not the build host's;
- PYTHONHASHSEED=0: a set constant (`x in {"a", "b"}`) is marshalled in its hash order.

They are compiled by a Python of the image's version (X.Y, found by the probe) on the build host: the
bytecode format is fixed within a minor version (one magic number), so the image's 3.11 reads what any
3.11 wrote. The compiler's full version is part of the cache key and the layer key, so a host with another
patch release, whose compiler may emit other bytes, never reuses these. Without such a Python on the host
the layers carry no bytecode and the build says so once (`--no-bytecode` turns it off on purpose).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagekit_core import proc
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, ImagekitError
from imagekit_core.spec.stepfiles import Kind, package_digest, walk

from .wheeltree import WheelTree

log = logging.getLogger("imagekit.build")

# Bump when the compile changes (flags, environment, what is left out): layer keys include it.
BYTECODE_FORMAT = "2"
# A package's own test suite: imported only to test the package (numpy: half its source), so compiled only if
# a step does that, at import, as without bytecode. Measured: numpy 1.26's 489 modules take 1.4 CPU-seconds
# to compile, its 242 outside tests/ 0.7, on the cold build's critical path, and the layer holds half the .pyc.
UNCOMPILED_DIRS = frozenset({"tests", "test"})
PROBE = "import sys; print(sys.implementation.name, sys.implementation.cache_tag, '%d.%d.%d' % sys.version_info[:3])"


@dataclass(frozen=True)
class Bytecode:
    """A directory of `<dir>/__pycache__/<module>.<tag>.pyc` files, laid out as the tree they were compiled
    from; `name` is its key (the layer tarball cache keys mappings by their sources' names)."""

    directory: Path
    name: str

    def files(self) -> list[tuple[PurePosixPath, Path]]:
        return sorted((PurePosixPath(path.relative_to(self.directory).as_posix()), path)
                      for path in self.directory.rglob("*.pyc"))


@dataclass(frozen=True)
class Compiler:
    """The build host's interpreter that compiles for the image's Python."""

    executable: str
    version: str  # its full version: 3.11.7
    cache_tag: str  # cpython-311: the image's Python looks for <module>.<cache_tag>.pyc

    @property
    def key(self) -> str:
        return f"{self.cache_tag}-{self.version}"

    def compiled(self, source: Path | WheelTree, image_root: PurePosixPath) -> Bytecode:
        """Bytecode for every .py file of source (a step package's directory, or a deps tree described by its
        wheels) as the image holds it at image_root; compiled once, then taken from the cache."""
        identity = source.name if isinstance(source, WheelTree) else package_digest(source)
        key = hashlib.sha256(f"{BYTECODE_FORMAT}\0{identity}\0{image_root}\0{self.key}".encode()).hexdigest()[:32]
        cached = cache_root() / "bytecode" / key
        if cached.is_dir():
            return Bytecode(cached, key)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="work.", dir=cached.parent) as work:
            tree = Path(work) / "tree"
            tree.mkdir()
            if not _python_sources(source, tree):
                return _empty(cached, key)
            self._compile(tree, image_root)
            for path in list(tree.rglob("*.py")):
                path.unlink()
            try:
                os.rename(tree, cached)
            except OSError:  # another build put it there meanwhile: the same bytes
                if not cached.is_dir():
                    raise
        return Bytecode(cached, key)

    def _compile(self, tree: Path, image_root: PurePosixPath) -> None:
        """compileall over the tree, with the image's paths compiled in; a file that does not compile (test
        data, another Python's syntax) is left without bytecode, as pip leaves it."""
        command = [self.executable, "-E", "-s", "-m", "compileall", "-q", "-q", "-j", "0",
                   "--invalidation-mode", "unchecked-hash", "-d", str(image_root), "."]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0",
                       "SOURCE_DATE_EPOCH": "0"}
        result = proc.run(command, cwd=tree, env=environment, check=False)
        if result.returncode not in (0, 1):  # 1: some file did not compile
            raise CommandFailed(command, result.returncode, (result.stdout or b"").decode(errors="replace"))


def compiled_module(relative: PurePosixPath) -> bool:
    """Whether a file of a layer gets bytecode: a Python module outside a test suite's directory."""
    return relative.suffix == ".py" and not UNCOMPILED_DIRS.intersection(relative.parts[:-1])


def _python_sources(source: Path | WheelTree, tree: Path) -> int:
    """Copy source's modules that get bytecode into tree (compileall writes beside them: never into a step
    package); how many."""
    count = 0
    if isinstance(source, WheelTree):
        for entry in source.entries():
            if entry.kind is Kind.file and entry.file is not None and compiled_module(entry.relative):
                destination = tree / entry.relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with source.open(entry.file) as handle, open(destination, "wb") as out:
                    shutil.copyfileobj(handle, out)
                count += 1
        source.close()
        return count
    for item in walk(source):
        if item.kind is Kind.file and compiled_module(item.relative):
            destination = tree / item.relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item.path, destination)
            count += 1
    return count


def _empty(cached: Path, key: str) -> Bytecode:
    cached.mkdir(exist_ok=True)
    return Bytecode(cached, key)


def find_compiler(version: str, implementation: str = "cpython") -> Compiler | None:
    """A Python of the image's version (3.11) on this host: this interpreter, else python3.11 on PATH."""
    if implementation != "cpython":
        return None
    candidates = [sys.executable, shutil.which(f"python{version}")]
    for executable in dict.fromkeys(c for c in candidates if c):
        try:
            output = proc.run([executable, "-E", "-s", "-c", PROBE], timeout=30).stdout.decode().split()
        except (ImagekitError, OSError, subprocess.SubprocessError):  # not runnable: look further
            continue
        if len(output) == 3 and output[0] == "cpython" and output[2].rsplit(".", 1)[0] == version:
            return Compiler(executable, output[2], output[1])
    return None
