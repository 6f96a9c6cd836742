"""Each step's deps layer as a build gets it: reused from a cache image by its key (reuse.py), or installed
here from the step's lock (deps.py), side by side, with its tarball written at once when it can be.

A step whose lock is current is looked up in the cache before anything is resolved, fetched or installed:
its key (deps.deps_layer_key) needs only the lock, the target and the bytecode's compiler. A stale or
missing lock is resolved first (the cache cannot know the lock it would give), then installed.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from imagekit_core.spec import StepSpec

from .bytecode import Compiler, find_compiler
from .context import cached_layer_tar
from .deps import DepsTree, deps_layer_key, install_step_requirements
from .lock import Lock, current_lock
from .plan import deps_mappings
from .reuse import LayerCache, RemoteLayer
from .wheels import PythonTarget

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class StepDeps:
    """A step's deps layer: installed here (tree), or reused from a cache image (reused)."""

    step: str
    key: str  # deps_layer_key: recorded in the image's labels
    lock: Lock
    tree: DepsTree | None = None
    reused: RemoteLayer | None = None


@dataclass(frozen=True)
class DepsRequest:
    """How a build wants its steps' deps: the target they are for, and what the build's flags say."""

    target: PythonTarget
    compiler: Compiler | None
    cache: LayerCache
    refresh: bool  # --no-cache: fetch the wheels again, reuse nothing
    locked: bool  # --locked: a missing or stale lock is refused
    pack: bool  # write each deps layer's tarball as soon as it is installed


def bytecode_compiler(target: PythonTarget, wanted: bool) -> Compiler | None:
    """What compiles the layers' bytecode for the image's Python: none with --no-bytecode, or (said once)
    when this host has no Python of the image's version."""
    if not wanted:
        return None
    compiler = find_compiler(target.version, target.implementation)
    if compiler is None:
        log.warning("no Python %s on this host to compile bytecode for the image's: its layers carry none, so "
                    "steps compile what they import at each start (install python%s here, or pass --no-bytecode "
                    "to build without it and not be told)", target.version, target.version)
    return compiler


def get_step_deps(step: StepSpec, request: DepsRequest, *, reuse: bool = True) -> StepDeps:
    """The step's deps layer: from the cache when its current lock's key is there (reuse), else installed."""
    if reuse and not request.refresh:
        lock = current_lock(step, request.target)
        if lock is not None:
            key = deps_layer_key(step.name, lock, request.target, request.compiler)
            remote = request.cache.layer(key)
            if remote is not None:
                log.info("deps %s: reused from a cache image (%s)", step.name, remote.blob.repository)
                return StepDeps(step.name, key, lock, reused=remote)
    tree = install_step_requirements(step, request.target, refresh=request.refresh, locked=request.locked)
    if request.pack:
        cached_layer_tar(deps_mappings(step.name, tree.wheels, tree.sbom, request.compiler))
    return StepDeps(step.name, deps_layer_key(step.name, tree.lock, request.target, request.compiler), tree.lock,
                    tree=tree)


def get_all(pool: ThreadPoolExecutor, steps: list[StepSpec], request: DepsRequest) -> list[Future[StepDeps]]:
    """Each step's deps layer, got side by side (each environment is isolated anyway); with request.pack its
    tarball is written at once (its bytecode compiled first), while the other steps still install."""
    return [pool.submit(get_step_deps, step, request) for step in steps]
