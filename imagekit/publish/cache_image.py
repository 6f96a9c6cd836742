"""Cache images in a registry (`build --cache-from REF`): the LayerCache a build reuses layers from.

Each REF is read once, when the build first asks: its manifest and config (two small requests), no layer.
The config's labels name every deps layer's key (labels.py), and its rootfs names every layer's diff ID,
whose blob the manifest gives in the same order. A REF the registry does not have (the first build of a
tag), or that imagekit did not build, is no cache: the build goes on without it, saying so once.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from imagekit.build.labels import ImageLabels
from imagekit.build.reuse import Blob, RemoteLayer
from imagekit.build.tarball import LayerTar
from imagekit_core.errors import EnvironmentMissing, ImagekitError, UsageError
from imagekit_core.references import parse_reference

from .registry import RegistryClient

log = logging.getLogger("imagekit.publish")

# OCI's name first (what imagekit's own push writes), then Docker's for the same bytes.
GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",)
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar",)


class RegistryCache:
    """The layers of the cache images REFs name, by key and by diff ID (implements reuse.LayerCache)."""

    def __init__(self, references: list[str], *, quiet: bool = False) -> None:
        self.references = references
        self.quiet = quiet  # the default cache images (the tags pushed to): one that is not there is no news
        self._lock = threading.Lock()
        self._read = False
        self._by_key: dict[str, RemoteLayer] = {}
        self._by_diff_id: dict[str, Blob] = {}
        self._found: list[str] = []
        self._clients: dict[str, RegistryClient] = {}

    def _client(self, host: str) -> RegistryClient:
        if host not in self._clients:
            self._clients[host] = RegistryClient(host, timeout=60.0)
        return self._clients[host]

    def _load(self) -> None:
        with self._lock:
            if self._read:
                return
            self._read = True
            for text in self.references:
                try:
                    self._read_image(text)
                except (EnvironmentMissing, UsageError) as exc:
                    (log.info if self.quiet else log.warning)("cache image %s: not used (%s)", text, exc)

    def _read_image(self, text: str) -> None:
        reference = parse_reference(text, "--cache-from", registry=True, digest=True)
        assert reference.host is not None
        client = self._client(reference.host)
        manifest, digest = client.manifest_and_digest(reference.repository,
                                                      reference.digest or reference.tag or "latest")
        if isinstance(manifest.get("manifests"), list):  # an index (a multi-platform image): each platform's
            for entry in manifest["manifests"]:
                self._read_image(f"{reference.host}/{reference.repository}@{entry['digest']}")
            return
        if not isinstance(manifest.get("layers"), list) or "config" not in manifest:
            raise UsageError("not a single-platform image manifest")
        config: dict[str, Any] = client.config(reference.repository, manifest)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(manifest["layers"]):
            raise UsageError("its manifest and config name different numbers of layers")
        blobs: dict[str, Blob] = {}
        for diff_id, layer in zip(diff_ids, manifest["layers"], strict=True):
            media_type = str(layer.get("mediaType", ""))
            if media_type in GZIP_TYPES + ZSTD_TYPES + TAR_TYPES:
                blobs[diff_id] = Blob(reference.host, reference.repository, str(layer["digest"]), int(layer["size"]),
                                      media_type)
        labels = ImageLabels.read((config.get("config") or {}).get("Labels") or {})
        for laid_out in labels.layers:
            blob = blobs.get(laid_out.digest)
            if laid_out.key and blob is not None and laid_out.tar_bytes:
                self._by_key.setdefault(laid_out.key, RemoteLayer(laid_out.digest, laid_out.size, laid_out.tar_bytes,
                                                                  blob))
        for diff_id, blob in blobs.items():
            self._by_diff_id.setdefault(diff_id, blob)
        self._found.append(f"{reference.host}/{reference.repository}@{digest}")
        log.info("cache image %s: %d layers, %d by key", text, len(blobs), len(self._by_key))

    def layer(self, key: str) -> RemoteLayer | None:
        self._load()
        return self._by_key.get(key)

    def blob(self, diff_id: str) -> Blob | None:
        self._load()
        return self._by_diff_id.get(diff_id)

    def fetch(self, layer: RemoteLayer, directory: Path) -> LayerTar:
        """The layer's tar, downloaded (decompressed as it comes) and checked against its diff ID."""
        directory.mkdir(parents=True, exist_ok=True)
        destination = directory / f"{layer.sha256.removeprefix('sha256:')}.tar"
        blob = layer.blob
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".fetch.", delete=False) as raw:
            self._client(blob.host).download(blob.repository, blob.digest, raw)
        try:
            digest = hashlib.sha256()
            with open(raw.name, "rb") as stored, open(destination, "wb") as out:
                for chunk in _decompressed(stored, blob.media_type):
                    digest.update(chunk)
                    out.write(chunk)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise EnvironmentMissing(f"cache image layer {blob.repository}@{blob.digest}: unreadable ({exc})") from None
        finally:
            os.unlink(raw.name)
        if "sha256:" + digest.hexdigest() != layer.sha256:
            destination.unlink()
            raise ImagekitError(f"cache image layer {blob.repository}@{blob.digest} does not hold {layer.sha256} as "
                                "its image's config says (fix: push the cache image again, or build with --no-cache)")
        return LayerTar(path=destination, sha256=layer.sha256, size=layer.size)

    def describe(self) -> list[str]:
        self._load()
        return list(self._found)

    def copy_blob(self, blob: Blob, host: str, repository: str) -> None:
        """blob into host/repository: mounted within one registry, else downloaded and uploaded as it is."""
        client = self._client(host)
        if blob.host == host and client.mount(repository, blob.digest, blob.repository):
            return
        with tempfile.NamedTemporaryFile(prefix="imagekit-blob-") as stored:
            self._client(blob.host).download(blob.repository, blob.digest, stored)
            stored.flush()
            client.upload(repository, blob.digest, Path(stored.name))


def _decompressed(stored: IO[bytes], media_type: str) -> Iterator[bytes]:
    """A blob's layer tar, 1 MiB at a time, as its media type says it is stored."""
    if media_type in ZSTD_TYPES:
        import zstandard  # the `zstd` extra: only zstd blobs need it

        reader: IO[bytes] = cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(stored))
    elif media_type in GZIP_TYPES:
        reader = cast(IO[bytes], gzip.GzipFile(fileobj=stored))
    else:
        reader = stored
    while chunk := reader.read(1 << 20):
        yield chunk
