"""A layer chain cache in front of any backend: build only what follows the longest known prefix.

An engine's build cache is a chain too, but it checks every instruction again, and the
Docker API is sent the whole context each time (115 MiB of numpy for wordfreq). Here
each prefix of the chain (the base image, then layer 1, layers 1–2, …) is keyed by the
digests of its tarballs; the image an engine made for a key is remembered, so a build
starts from the deepest prefix the engine still holds and hands it only the layers after it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .backend import Backend, BuildRequest
from .context import write_containerfile, write_layer_tars
from .plan import PlannedLayer
from .wheels import cache_root

log = logging.getLogger("imagekit.build")


class ChainIndex:
    """prefix key → image ID, per backend, in the imagekit cache."""

    def __init__(self, backend: str) -> None:
        self.path = cache_root() / f"chains-{backend}.json"
        try:
            self.entries: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.part")
        temporary.write_text(json.dumps(self.entries, indent=0, sort_keys=True))
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class ChainResult:
    image_id: str
    cached: tuple[bool, ...]  # per layer: not built by this call (known prefix, or the engine's cache)
    sent: int  # how many layers the engine was handed


def prefix_keys(base_image_id: str, digests: list[str], timestamp: int | None) -> list[str]:
    keys = []
    key = hashlib.sha256(f"{base_image_id}\0{timestamp}".encode()).hexdigest()
    for digest in digests:
        key = hashlib.sha256(f"{key}\0{digest}".encode()).hexdigest()
        keys.append(key)
    return keys


def build_chain(backend: Backend, layers: tuple[PlannedLayer, ...], base: str, base_id: str, directory: Path,
                tag: str, *, timestamp: int | None, no_cache: bool) -> ChainResult:
    """Build `layers` on `base` (an image the backend holds, ID base_id), tagging the result `tag`."""
    tars = write_layer_tars(layers, directory)
    keys = prefix_keys(base_id, [tars[layer.name].sha256 for layer in layers], timestamp)
    index = ChainIndex(backend.name)
    start, start_image = 0, base
    if not no_cache:
        for position in range(len(layers), 0, -1):
            known = index.entries.get(keys[position - 1])
            if known and backend.image_id(known):
                start, start_image = position, known
                break
    if start:
        log.info("layers %s: reused (built before)", ", ".join(layer.name for layer in layers[:start]))
    remaining = layers[start:]
    if not remaining:
        backend.tag(start_image, tag)
        return ChainResult(image_id=backend.image_id(tag) or start_image, cached=(True,) * len(layers), sent=0)
    containerfile = write_containerfile(directory, start_image, remaining, "step layers")
    outcome = backend.build(BuildRequest(context=directory, containerfile=containerfile, tag=tag,
                                         timestamp=timestamp, no_cache=no_cache))
    for offset, image in enumerate(outcome.step_images):
        if image:
            index.entries[keys[start + offset]] = image
    index.save()
    cached = (True,) * start + tuple(outcome.cached) + (False,) * (len(remaining) - len(outcome.cached))
    return ChainResult(image_id=outcome.image_id, cached=cached, sent=len(remaining))
