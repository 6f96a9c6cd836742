"""A step's deps tree: its lock (lock.py), the wheels the lock names, installed into one directory.

The tree is what the image gets at /opt/imagekit/deps/<step>/ (the runtime puts it first on
that step's PYTHONPATH). Trees are cached in the imagekit cache by the lock's content and the
target: the same lock gives the same tree on any machine. `refresh` (build --no-cache)
installs again from the lock; only `imagekit lock` or a changed requirements file resolves again.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imagekit_runtime.cachedir import cache_root
from imagekit_runtime.errors import CommandFailed, SpecError
from imagekit_runtime.spec import StepSpec

from .lock import Lock, current_lock, normalise_name, resolve
from .sbom import cached_sbom, cyclonedx_json, installed_packages
from .tarball import tree_size
from .unpack import unpack_wheels
from .wheels import PythonTarget, download_locked, requirements_key, resolution_error, strip_caches

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class DepsTree:
    step: str
    tree: Path  # the installed packages
    lock: Lock
    sbom: Path  # a directory holding <step>.cdx.json

    @property
    def size(self) -> int:
        """Bytes of file content in the tree (as its layer holds them), kept beside the tree once counted."""
        record = self.tree.with_name(self.tree.name + ".size")
        try:
            return int(record.read_text())
        except (OSError, ValueError):
            size = tree_size(self.tree)
            record.write_text(str(size))
            return size


def step_lock(step: StepSpec, target: PythonTarget, wheels: Path, *, refresh: bool = False) -> Lock:
    """The step's lock as it stands, or a new one (refresh: always new); pip leaves wheels it fetched in wheels."""
    lock = None if refresh else current_lock(step, target)
    return lock if lock is not None else resolve(step, target, wheels)


def install_step_requirements(step: StepSpec, target: PythonTarget, *, refresh: bool = False) -> DepsTree:
    """The step's deps tree, installed from its lock (written first when it has none or it is stale)."""
    assert step.requirements is not None
    with deps_work() as work:
        wheels = work / "wheels"
        lock = step_lock(step, target, wheels)
        tree = install_locked(step.name, lock, target, work, refresh=refresh,
                              failed=lambda output: resolution_error(step, target, output))
    return DepsTree(step.name, tree, lock, step_sbom(step, tree, lock))


@contextmanager
def deps_work() -> Iterator[Path]:
    """A scratch directory beside the cached trees (a tree moves from it into the cache), with wheels/ in it."""
    root = cache_root() / "deps"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work.", dir=root) as work:
        (Path(work) / "wheels").mkdir()
        yield Path(work)


def install_locked(name: str, lock: Lock, target: PythonTarget, work: Path, *, refresh: bool,
                   failed: Callable[[str], Exception]) -> Path:
    """The tree of a lock's wheels, from the cache or installed (work: from deps_work(); its wheels/ may hold
    some already); failed: the error for pip's output when a download fails."""
    wheels = work / "wheels"
    key = requirements_key(lock.text, target)
    tree = cache_root() / "deps" / key
    if tree.is_dir() and not refresh:
        log.info("deps %s: cached (%s)", name, key)
        return tree
    installed = work / "tree"
    try:
        if _missing(lock, wheels):
            download_locked(lock.path, target, wheels)
    except CommandFailed as exc:
        raise failed(exc.output) from None
    unpack_wheels(_locked_wheels(name, lock, wheels), installed)
    strip_caches(installed)
    if refresh and tree.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.with_name(tree.name + ".size").unlink(missing_ok=True)
    try:
        os.replace(installed, tree)
    except OSError:
        if not tree.is_dir():  # else another build installed the same lock meanwhile
            raise
    return tree


def _wheel_key(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return normalise_name(name), version


def _missing(lock: Lock, wheels: Path) -> bool:
    have = {_wheel_key(wheel) for wheel in wheels.glob("*.whl")}
    return any((pin.name, pin.version) not in have for pin in lock.pins)


def _locked_wheels(name: str, lock: Lock, wheels: Path) -> list[Path]:
    """The wheel of each pin, checked against the pin's hashes (as pip's --require-hashes would)."""
    by_key = {_wheel_key(wheel): wheel for wheel in sorted(wheels.glob("*.whl"))}
    chosen = []
    for pin in lock.pins:
        wheel = by_key.get((pin.name, pin.version))
        if wheel is None:
            raise SpecError(lock.path, pin.name, f"step {name!r}: no wheel of {pin.name}=={pin.version} for "
                            "this Python and platform", "run `imagekit lock` to lock again")
        if hashlib.sha256(wheel.read_bytes()).hexdigest() not in pin.hashes:
            raise SpecError(lock.path, "--hash", f"step {name!r}: {wheel.name} does not match the hash its "
                            "lock names", "check the index you fetch from, or run `imagekit lock` to lock again")
        chosen.append(wheel)
    return chosen


def step_sbom(step: StepSpec, tree: Path, lock: Lock) -> Path:
    """The step's SBOM (every distribution in its tree, hashes from its lock), in a directory of its own."""
    def make() -> str:
        return cyclonedx_json(step.name, None, installed_packages(tree, lock.pins),
                              f"step {step.name}: the Python packages installed at /opt/imagekit/deps/{step.name}")

    return cached_sbom(step.name, f"{tree.name}\0{lock.text}", make)
