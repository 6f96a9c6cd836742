"""The build contract, in small interfaces that know no implementation (engines.py picks one: docker.py or
buildah.py).

A backend loads an image imagekit assembled from its own layer tarballs (the runtime
base's and every step's), inspects the images it holds, and pushes them; it can build
a Containerfile too (the by-hand runtime base, the benchmark's naive image), which
`imagekit build` never does. Everything above it (wheel resolution, layer
planning, image assembly, labels, caching of host-side work) is shared and engine-agnostic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imagekit_core.errors import EnvironmentMissing
from imagekit_core.platforms import Platform

from .assembly import AssembledImage, BaseImage
from .events import BuildEvents

_UNREACHABLE = ("connection refused", "no such host", "i/o timeout", "network is unreachable",
                "no route to host", "connection reset", "server gave http response to https client")


def push_failed(destination: str, engine_output: str) -> EnvironmentMissing:
    """An engine's failed push, as exit 3 with the engine's words: the registry, not a step, failed."""
    text = engine_output.strip()[-500:] or "no digest in the engine's answer"
    if registry_unreachable(text):
        return EnvironmentMissing(f"registry of {destination} unreachable: {text}")
    return EnvironmentMissing(f"push of {destination} failed: {text} (fix: check the registry and the credentials "
                              f"for it: `docker login HOST`)")


def registry_unreachable(engine_output: str) -> bool:
    """Whether an engine's push/pull error means the registry could not be reached at all."""
    text = engine_output.lower()
    return any(marker in text for marker in _UNREACHABLE)


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    containerfile: str  # relative to context
    tag: str
    build_args: dict[str, str] = field(default_factory=dict)
    timestamp: int | None = None  # SOURCE_DATE_EPOCH: fixes created times where the engine can
    no_cache: bool = False


@dataclass(frozen=True)
class ImageInfo:
    id: str
    diff_ids: tuple[str, ...]
    labels: dict[str, str]
    layer_sizes: tuple[int | None, ...]  # uncompressed bytes per layer, when the engine tells
    history: tuple[dict[str, Any], ...] = ()
    user: str = ""
    entrypoint: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    created: str = ""
    manifest_digest: str | None = None  # of the local manifest, when the engine keeps one


def assembled_info(image: AssembledImage) -> ImageInfo:
    """What an engine would say of an image imagekit assembled, said from the image itself."""
    config = json.loads(image.config)
    runtime = config.get("config") or {}
    return ImageInfo(
        id=image.config_digest, diff_ids=image.diff_ids, labels=dict(runtime.get("Labels") or {}),
        layer_sizes=(*image.base.layer_sizes, *(layer.file_size for layer in image.layers)),
        history=tuple(config.get("history") or ()), user=runtime.get("User", ""),
        entrypoint=tuple(runtime.get("Entrypoint") or ()), env=tuple(runtime.get("Env") or ()),
        created=config.get("created", ""), manifest_digest=image.manifest_digest,
    )


@dataclass(frozen=True)
class PushReport:
    """What an engine says about a push: the manifest digest, and per layer whether it sent the blob."""

    digest: str
    # Per layer (in diff_ids order): True uploaded, False already there or mounted, None the engine won't say.
    uploaded: tuple[bool | None, ...]


class ImageStore(Protocol):
    """The images an engine holds."""

    def image_id(self, ref: str) -> str | None:
        """The local image ID of ref, or None when the engine doesn't hold it."""

    def inspect(self, ref: str) -> ImageInfo:
        """Layers, labels and history of a local image."""

    def find(self, ref: str) -> ImageInfo | None:
        """inspect(ref), or None when the engine doesn't hold it."""
        return self.inspect(ref) if self.image_id(ref) else None

    def read_file(self, ref: str, path: str) -> bytes | None:
        """The bytes of one regular file in a local image's file system (no container is run); None when
        the image has no such file."""

    def tag(self, image: str, ref: str) -> None: ...

    def name_platforms(self, ref: str, images: dict[Platform, str]) -> str:
        """Give ref to the images of several platforms (each held under a tag of its own) as far as the
        engine can: buildah, a manifest list of them all; Docker, which holds one image per name, this
        machine's platform's image (else the first). What ref names, in a few words."""

    def listed_platforms(self, ref: str) -> tuple[Platform, ...]:
        """The platforms ref names when the engine holds it as a list of images (buildah's manifest list), in
        its order; () when it names one image, or nothing."""

    def remove(self, refs: list[str]) -> None:
        """Remove local images (tags); missing ones are ignored."""

    def untagged(self) -> set[str]:
        """The IDs of the images the engine holds under no tag (a rebuild leaves the one the tag named so:
        still usable by ID, never removed by imagekit)."""


class ImageLoader(Protocol):
    """Images imagekit assembled from its own layer tarballs, handed to the engine."""

    def base_image(self, image: ImageInfo) -> BaseImage:
        """The stored config of a local image (as inspect() gave it), to assemble an image on."""

    def load(self, image: AssembledImage, tag: str, work: Path, held: int) -> ImageInfo:
        """Load an assembled image (its base and its first `held` new layers are in the engine already),
        tag it, and inspect it. work: a directory the backend may use."""


class ImageRunner(Protocol):
    """Containers run, and Containerfiles built (the by-hand runtime base, the benchmark's naive image)."""

    def ensure_image(self, ref: str) -> str:
        """The image ID of ref, pulling it if needed; EnvironmentMissing when it can't be had."""

    def run_python(self, image: str, script: str) -> str:
        """Run `python3 -c script` in a throwaway container of image (as root, no network); its stdout."""

    def build(self, request: BuildRequest) -> str:
        """Build request.containerfile; tag the result request.tag; its image ID."""


class ImagePusher(Protocol):
    def push(self, ref: str, destination: str, *, insecure: bool, authfile: Path | None) -> PushReport:
        """Push local image ref to destination (a registry reference); raise EnvironmentMissing if unreachable."""


class Backend(ImageStore, ImageLoader, ImageRunner, ImagePusher, Protocol):
    """An image engine: all of the above, and whether it can be used at all."""

    name: str
    events: BuildEvents  # where the build and push report progress (set by the CLI)

    def check(self) -> None:
        """Raise EnvironmentMissing (exit 3) with a hint when the engine can't be used."""
