"""A step's deps tree: its lock (lock.py), the wheels the lock names, as they install into one directory.

The tree is what the image gets at /opt/imagekit/deps/<step>/ (the runtime puts it first on
that step's PYTHONPATH). The imagekit cache keeps the lock's wheels, checked against its hashes,
by the lock's content and the target: the same lock gives the same tree on any machine. The deps
layer is written straight from the wheels (wheeltree.py); the tree is unpacked on disk only when
asked for (`DepsTree.unpacked`). `refresh` (build --no-cache) fetches the wheels again from the
lock; only `imagekit lock` or a changed requirements file resolves again.
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

from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, SpecError
from imagekit_core.spec import StepSpec

from .bytecode import BYTECODE_FORMAT, Compiler
from .lock import Lock, current_lock, lock_path, normalise_name, resolve
from .sbom import SBOM_FORMAT, cached_sbom, cyclonedx_json, installed_packages
from .tarball import LAYER_FORMAT
from .unpack import unpack_wheels
from .wheels import TREE_FORMAT, PythonTarget, download_locked, requirements_key, resolution_error, strip_caches
from .wheeltree import WheelTree

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class DepsTree:
    step: str
    wheels: WheelTree  # the installed packages, described by the lock's wheels (layers are written from them)
    lock: Lock
    sbom: Path  # a directory holding <step>.cdx.json

    @property
    def size(self) -> int:
        """Bytes of file content in the tree (as its layer holds them), kept in the cache once counted."""
        record = _cached(self.wheels.name, ".size")
        try:
            return int(record.read_text())
        except (OSError, ValueError):
            size = self.wheels.size()
            record.write_text(str(size))
            return size

    def unpacked(self) -> Path:
        """The tree on disk, in the cache (unpacked from the wheels the first time it is asked for)."""
        tree = _cached(self.wheels.name)
        if not tree.is_dir():
            with deps_work() as work:
                unpack_wheels(list(self.wheels.wheels), work / "tree")
                strip_caches(work / "tree")
                try:
                    os.replace(work / "tree", tree)
                except OSError:
                    if not tree.is_dir():  # else another build unpacked it meanwhile
                        raise
        return tree


def _cached(key: str, suffix: str = "") -> Path:
    """Where the cache keeps what belongs to the deps of key: the tree (no suffix), .wheels, .size."""
    return cache_root() / "deps" / f"{key}{suffix}"


def step_lock(step: StepSpec, target: PythonTarget, wheels: Path, *, refresh: bool = False,
              locked: bool = False) -> Lock:
    """The step's lock as it stands, or a new one (refresh: always new); pip leaves wheels it fetched in wheels.
    locked: the lock must stand as it is (`build --locked`, as `npm ci`): a missing or stale one is refused."""
    lock = None if refresh and not locked else current_lock(step, target)
    if lock is None and locked:
        raise SpecError(lock_path(step, target.platform), lock_path(step, target.platform).name,
                        f"step {step.name}: missing, or stale (locked from other requirements or for "
                        f"another Python than the base's {target.key()})",
                        "run `imagekit lock PIPELINE` and commit the lock, or build without --locked")
    return lock if lock is not None else resolve(step, target, wheels)


def deps_layer_key(step: str, lock: Lock, target: PythonTarget, compiler: Compiler | None) -> str:
    """What a step's deps layer is made from, as one key, known before anything is fetched: the lock (every
    wheel pinned by hash), the target Python and platform, the bytecode's compiler, and the formats of the
    tree, SBOM, bytecode and tarball imagekit writes. The same key gives the same layer bytes; the image's
    labels record it, and `build --cache-from` reuses a layer whose key matches (reuse.py)."""
    parts = (TREE_FORMAT, SBOM_FORMAT, BYTECODE_FORMAT, LAYER_FORMAT, step, target.key(),
             compiler.key if compiler else "no-bytecode", lock.text)
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def install_step_requirements(step: StepSpec, target: PythonTarget, *, refresh: bool = False,
                              locked: bool = False) -> DepsTree:
    """The step's deps tree, installed from its lock (written first when it has none or it is stale,
    unless locked)."""
    assert step.requirements is not None
    with deps_work() as work:
        wheels = work / "wheels"
        lock = step_lock(step, target, wheels, locked=locked)
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
                   failed: Callable[[str], Exception]) -> WheelTree:
    """The tree of a lock's wheels: from the cache, or fetched and checked against the lock's hashes (work: from
    deps_work(); its wheels/ may hold some already); failed: the error for pip's output when a download fails."""
    key = requirements_key(lock.text, target)
    cached = _cached(key, ".wheels")
    if cached.is_dir() and not refresh:
        log.info("deps %s: cached (%s)", name, key)
        return WheelTree(key, _locked_wheels(name, lock, cached, cached=True))
    wheels = work / "wheels"
    try:
        if _missing(lock, wheels):
            download_locked(lock.path, target, wheels)
    except CommandFailed as exc:
        raise failed(exc.output) from None
    staged = work / "locked"
    staged.mkdir()
    for wheel in _locked_wheels(name, lock, wheels):  # checked against the lock's hashes
        os.replace(wheel, staged / wheel.name)
    if refresh:
        for stale in (cached, _cached(key), _cached(key, ".size")):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
    try:
        os.replace(staged, cached)
    except OSError:
        if not cached.is_dir():  # else another build fetched the same lock meanwhile
            raise
    return WheelTree(key, _locked_wheels(name, lock, cached, cached=True))


def _wheel_key(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return normalise_name(name), version


def _missing(lock: Lock, wheels: Path) -> bool:
    have = {_wheel_key(wheel) for wheel in wheels.glob("*.whl")}
    return any((pin.name, pin.version) not in have for pin in lock.pins)


def _locked_wheels(name: str, lock: Lock, wheels: Path, *, cached: bool = False) -> tuple[Path, ...]:
    """The wheel of each pin, in the lock's order (the order they unpack in), checked against the pin's
    hashes as pip's --require-hashes would; cached: taken from the cache, where they were checked when
    they were put there (found by name and version only)."""
    by_key = {_wheel_key(wheel): wheel for wheel in sorted(wheels.glob("*.whl"))}
    chosen = []
    for pin in lock.pins:
        wheel = by_key.get((pin.name, pin.version))
        if wheel is None and cached:
            raise SpecError(lock.path, pin.name, f"step {name!r}: the cached wheels of its lock lack "
                            f"{pin.name}=={pin.version}", f"remove {wheels} (or build with --no-cache)")
        if wheel is None:
            raise SpecError(lock.path, pin.name, f"step {name!r}: no wheel of {pin.name}=={pin.version} for "
                            "this Python and platform", "run `imagekit lock` to lock again")
        if not cached and hashlib.sha256(wheel.read_bytes()).hexdigest() not in pin.hashes:
            raise SpecError(lock.path, "--hash", f"step {name!r}: {wheel.name} does not match the hash its "
                            "lock names", "check the index you fetch from, or run `imagekit lock` to lock again")
        chosen.append(wheel)
    return tuple(chosen)


def step_sbom(step: StepSpec, tree: WheelTree, lock: Lock) -> Path:
    """The step's SBOM (every distribution in its tree, hashes from its lock), in a directory of its own."""
    def make() -> str:
        return cyclonedx_json(step.name, None, installed_packages(tree.metadata().values(), lock.pins),
                              f"step {step.name}: the Python packages installed at /opt/imagekit/deps/{step.name}")

    return cached_sbom(step.name, f"{tree.name}\0{lock.text}", make)
