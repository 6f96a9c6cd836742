"""The base image a build starts from, without waiting for the engine on a rebuild.

What an engine says about an image ID never changes (the ID is its config's digest), so
the base's stored config and layer sizes are kept by ID in the imagekit cache. Which ID a
reference names can change (a tag moves): the ID it named at the last build is remembered,
the build starts from it while the engine is asked again on the side, and `confirm` —
called before anything is loaded — checks the two agree. When they don't, BaseMoved: the
build starts over from the engine's answer, so no image is ever loaded on a stale base.
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from imagekit_core.cachedir import cache_root

from .assembly import BaseImage
from .backend import Backend


class BaseMoved(Exception):
    """The reference names another image than the one the build started from."""


def _remembered_file(backend: Backend, ref: str) -> Path:
    return cache_root() / "base-refs" / f"{backend.name}-{hashlib.sha256(ref.encode()).hexdigest()[:32]}"


def _stored_file(backend: Backend, image_id: str) -> Path:
    return cache_root() / "base-images" / f"{backend.name}-{image_id.removeprefix('sha256:')}.json"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


@dataclass
class BaseLookup:
    ref: str
    id: str  # the image ID the build starts from
    backend: Backend
    asked: Future[str] | None  # the engine's answer, when the build started from the remembered ID

    def confirm(self) -> None:
        """Before loading: the reference still names `id` (else BaseMoved); remembered for the next build."""
        if self.asked is not None and self.asked.result() != self.id:
            raise BaseMoved(f"{self.ref} now names {self.asked.result()}, not {self.id}")
        _write(_remembered_file(self.backend, self.ref), self.id)


def look_up_base(backend: Backend, ref: str, engine: ThreadPoolExecutor, *, remembered: bool = True) -> BaseLookup:
    """The base's image ID: the remembered one (checked on the side, in `engine`, see confirm) when its
    config is stored, else the engine's (pulling the image if needed)."""
    if remembered:
        try:
            image_id = _remembered_file(backend, ref).read_text().strip()
        except OSError:
            image_id = ""
        if image_id and _stored_file(backend, image_id).is_file():
            return BaseLookup(ref, image_id, backend, engine.submit(backend.ensure_image, ref))
    return BaseLookup(ref, backend.ensure_image(ref), backend, None)


def stored_base(backend: Backend, image_id: str) -> BaseImage:
    """The config and layer sizes of an image, from the imagekit cache or (once per ID) from the engine."""
    path = _stored_file(backend, image_id)
    try:
        stored = json.loads(path.read_text())
        return BaseImage(id=stored["id"], config=stored["config"], layer_sizes=tuple(stored["layer_sizes"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    base = backend.base_image(backend.inspect(image_id))
    _write(path, json.dumps({"id": base.id, "config": base.config, "layer_sizes": list(base.layer_sizes)}))
    return base
