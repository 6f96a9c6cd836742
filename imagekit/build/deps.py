"""A step's deps tree: its lock (lock.py), the wheels the lock names, installed into one directory.

The tree is what the image gets at /opt/imagekit/deps/<step>/ (the runtime puts it first on
that step's PYTHONPATH). Trees are cached in the imagekit cache by the lock's content and the
target: the same lock gives the same tree on any machine. `refresh` (build --no-cache)
installs again from the lock; only `imagekit lock` or a changed requirements file resolves again.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagekit_runtime.cachedir import cache_root
from imagekit_runtime.errors import CommandFailed
from imagekit_runtime.spec import StepSpec

from .lock import Lock, current_lock, normalise_name, resolve
from .sbom import cyclonedx_json, installed_packages, write_sbom
from .wheels import PythonTarget, download_locked, install_locked, requirements_key, resolution_error

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class DepsTree:
    step: str
    tree: Path  # the installed packages
    lock: Lock
    sbom: Path  # a directory holding <step>.cdx.json


def step_lock(step: StepSpec, target: PythonTarget, wheels: Path, *, refresh: bool = False) -> Lock:
    """The step's lock as it stands, or a new one (refresh: always new); pip leaves wheels it fetched in wheels."""
    lock = None if refresh else current_lock(step, target)
    return lock if lock is not None else resolve(step, target, wheels)


def install_step_requirements(step: StepSpec, target: PythonTarget, *, refresh: bool = False) -> DepsTree:
    """The step's deps tree, installed from its lock (written first when it has none or it is stale)."""
    assert step.requirements is not None
    root = cache_root() / "deps"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="work.", dir=root) as work:
        wheels = Path(work) / "wheels"
        wheels.mkdir()
        lock = step_lock(step, target, wheels)
        key = requirements_key(lock.text, target)
        tree = root / key
        if tree.is_dir() and not refresh:
            log.info("deps %s: cached (%s)", step.name, key)
            return DepsTree(step.name, tree, lock, step_sbom(step, tree, lock))
        missing = {pin.name for pin in lock.pins} - {normalise_name(wheel.name.split("-")[0])
                                                    for wheel in wheels.glob("*.whl")}
        installed = Path(work) / "tree"
        try:
            if missing:
                download_locked(lock.path, target, wheels)
            install_locked(lock.path, target, wheels, installed)
        except CommandFailed as exc:
            raise resolution_error(step, target, exc.output) from None
        if refresh and tree.exists():
            shutil.rmtree(tree, ignore_errors=True)
        try:
            os.replace(installed, tree)
        except OSError:
            if not tree.is_dir():  # else another build installed the same lock meanwhile
                raise
    return DepsTree(step.name, tree, lock, step_sbom(step, tree, lock))


def step_sbom(step: StepSpec, tree: Path, lock: Lock) -> Path:
    """The step's SBOM (every distribution in its tree, hashes from its lock), in a directory of its own."""
    document = cyclonedx_json(step.name, None, installed_packages(tree, lock.pins),
                              f"step {step.name}: the Python packages installed at /opt/imagekit/deps/{step.name}")
    return write_sbom(step.name, document)
