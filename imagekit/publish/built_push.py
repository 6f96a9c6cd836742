"""How a built image is pushed: by the engine that holds it, or by imagekit itself (image_push.py)."""
from __future__ import annotations

from imagekit.build.backend import Backend
from imagekit.build.builder import BuildResult
from imagekit.build.reuse import LayerCache
from imagekit_core.errors import UsageError

from .cache_image import RegistryCache
from .image_push import Compression, push_image
from .publisher import Published
from .registry import RegistryPublisher


def push_built(engine: Backend, result: BuildResult, destination: str, cache: LayerCache,
               compression: Compression = Compression.gzip) -> Published:
    """Push the built image: by the engine when it holds the image (it then knows the pushed digest, which
    `docker images --digests` and local pods show), else by imagekit itself, each layer from where it is
    (loading.py left it out only when a cache image holds every layer it lacks); with zstd, always by
    imagekit (engines push gzip), the layers a cache image holds as gzip fetched and compressed again."""
    if result.loaded and compression is Compression.gzip:
        engine.check()
        return RegistryPublisher().publish(engine, result.tag, destination)
    pushed = push_image(result.image, destination, cache, engine.events, compression) \
        if isinstance(cache, RegistryCache) and result.image is not None else None
    if pushed is not None:
        return pushed
    if not result.loaded:
        raise AssertionError("an image left out of the engine has a source for every layer")
    raise UsageError(f"--compression {compression.value}: the base image's layers are in no registry image "
                     "imagekit can read (fix: pass --cache-from an image built on this base, or push with gzip)")
