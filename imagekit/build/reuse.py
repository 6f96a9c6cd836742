"""Layers reused from images in a registry (`build --cache-from`): what the build asks of such a cache.

A deps layer is named by its key (deps.deps_layer_key: the step's lock, the target Python, the compiler
of its bytecode, the formats imagekit writes), which the image's labels record beside its digest. A build
whose step has the same key takes the layer from the cache image instead of resolving, fetching and
installing anything: it knows the layer's diff ID (so the image config, and the image ID, are the ones a
local build makes) and the registry blob that holds it (so a push sends nothing, or mounts it). Only an
engine that must load the image gets the layer's bytes, and only the blobs it lacks.

The interface knows no registry; publish/cache_image.py implements it, and the CLI picks it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .tarball import LayerTar


@dataclass(frozen=True)
class Blob:
    """A layer's blob in a registry, as its manifest names it."""

    host: str
    repository: str
    digest: str  # of the blob as stored (compressed)
    size: int
    media_type: str


@dataclass(frozen=True)
class RemoteLayer:
    """A layer a cache image holds: its diff ID (the uncompressed tar's digest), its content size as
    imagekit reported it, and where its bytes are."""

    sha256: str
    size: int
    tar_bytes: int  # the uncompressed tar's length (an OCI layout's manifest names it)
    blob: Blob


class LayerCache(Protocol):
    def layer(self, key: str) -> RemoteLayer | None:
        """The layer of that key in a cache image, if one has it."""

    def blob(self, diff_id: str) -> Blob | None:
        """A blob holding the layer of that diff ID in a cache image (any layer: the base's too)."""

    def fetch(self, layer: RemoteLayer, directory: Path) -> LayerTar:
        """The layer's tar in directory, downloaded and checked against its diff ID (an engine must load it)."""

    def describe(self) -> list[str]:
        """The cache images found (REF@digest), for the report."""


class NoCache:
    """No cache image: every layer is made here."""

    def layer(self, key: str) -> RemoteLayer | None:
        return None

    def blob(self, diff_id: str) -> Blob | None:
        return None

    def fetch(self, layer: RemoteLayer, directory: Path) -> LayerTar:
        raise AssertionError("NoCache holds no layer")

    def describe(self) -> list[str]:
        return []
