"""The assembled image into the engine: the layers it holds already are not sent, the layers reused from a
cache image are fetched first (only those it lacks), or, for a build that pushes and would otherwise
download them only to load them, the image is left out of the engine (`build --push` without `--load`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from imagekit_core.errors import CommandFailed

from .assembly import AssembledImage
from .backend import Backend, ImageInfo, assembled_info
from .events import Stage
from .layercache import ChainIndex, held_layers
from .reuse import LayerCache, RemoteLayer

log = logging.getLogger("imagekit.build")


@dataclass(frozen=True)
class Loaded:
    info: ImageInfo  # as the engine has it, or as assembled when it was left out
    image: AssembledImage  # with every reused layer it fetched now local
    held: int  # layers of imagekit's the engine held already
    loaded: bool  # False: left out of the engine


def load_image(backend: Backend, image: AssembledImage, tag: str, work: Path, *, base_layers: int,
               previous: ImageInfo | None, cache: LayerCache, fetch_reused: bool, no_cache: bool) -> Loaded:
    chains = ChainIndex(backend.name)
    held = 0 if no_cache else held_layers(backend, chains, image.diff_ids, base_layers, previous)
    if held:
        log.info("layers %s: held by the engine already", ", ".join(layer.name for layer in image.layers[:held]))
    missing = [position for position, layer in enumerate(image.layers)
               if position >= held and isinstance(layer.tar, RemoteLayer)]
    # Left out only when the push can send it without the engine: the base's layers are in a cache image too.
    if missing and not fetch_reused and all(cache.blob(diff_id) is not None for diff_id in image.base.diff_ids):
        log.info("not loaded into %s: layers %s are in the registry, not here (build --load fetches them)",
                 backend.name, ", ".join(image.layers[position].name for position in missing))
        return Loaded(assembled_info(image), image, held, loaded=False)
    layers = list(image.layers)
    for position in missing:
        layer = layers[position]
        assert isinstance(layer.tar, RemoteLayer)
        layers[position] = replace(layer, tar=cache.fetch(layer.tar, work / "fetched"))
        backend.events.stage(layer.name, Stage.WRITTEN, layer.tar.size)
    image = replace(image, layers=tuple(layers))
    final = backend.load(image, tag, work, held)
    chains.record(image.diff_ids, final.id)
    if final.diff_ids != image.diff_ids:
        raise CommandFailed([backend.name, "load", tag], 1, "the loaded image's layers are not the ones "
                            "imagekit assembled: another build replaced the tag meanwhile?")
    for position, layer in enumerate(image.layers):
        backend.events.stage(layer.name, Stage.HELD if position < held else Stage.LOADED, layer.tar.size)
    return Loaded(final, image, held, loaded=True)
