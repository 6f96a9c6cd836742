"""imagekit's own push (`build --push` of an image left out of the engine, its reused layers in a registry):
the assembled image sent blob by blob, each layer from where it already is, as ko and Jib push.

An engine's push sends every layer it has no record of having pushed, so on an empty CI runner it sends
them all again (measured: Docker 20.10 re-uploads every layer of an image it loaded, though the registry
holds each blob). Here each layer's blob is looked up first:
- a layer a cache image holds (by diff ID: the base's and the runtime's too, and the deps layers reused by
  key) is not sent: it is there already in the same repository, mounted from another one in the same
  registry, or else copied blob to blob;
- any other layer (a changed code layer, say) is compressed here (gzip, no name or time in its header, so
  the same layer gives the same blob) and uploaded unless the registry has that blob.
Then the config, and the manifest under the tag. Nothing is sent before every layer has a source (an image
whose base layers no cache image holds is loaded, and the engine pushes it: loading.py).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from imagekit.build.assembly import CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, AssembledImage
from imagekit.build.events import NO_EVENTS, BuildEvents, Stage
from imagekit.build.reuse import Blob, LayerCache, RemoteLayer
from imagekit.build.tarball import LayerTar
from imagekit_core.cachedir import cache_root
from imagekit_core.references import parse_reference

from .cache_image import GZIP_TYPES, ZSTD_TYPES, RegistryCache
from .publisher import Published, PublishedLayer
from .registry import RegistryClient

GZIP_LEVEL = 6  # as Docker's and containerd's pushes compress (Go's default): ~3x faster than gzip -9
ZSTD_LEVEL = 3  # zstd's default


class Compression(StrEnum):
    """How imagekit's own push compresses layers. gzip: every engine pulls it. zstd: containerd >= 1.5 and
    Docker >= 23 pull it, not older Docker engines; a layer a cache image holds as gzip is fetched and
    compressed again (docs/bench/cluster.md has the trial that decided the default)."""

    gzip = "gzip"
    zstd = "zstd"

    @property
    def media_type(self) -> str:
        return GZIP_TYPES[0] if self is Compression.gzip else ZSTD_TYPES[0]  # OCI's names


@dataclass(frozen=True)
class _Compressed:
    path: Path
    digest: str
    size: int


def sources(image: AssembledImage, cache: LayerCache) -> list[tuple[str, LayerTar | Blob]] | None:
    """Each layer's name and where its bytes are (a local tar, or a blob in a registry); None when one has
    neither (the base's layers, with no cache image holding them)."""
    found: list[tuple[str, LayerTar | Blob]] = []
    for position, diff_id in enumerate(image.base.diff_ids):
        blob = cache.blob(diff_id)
        if blob is None:
            return None
        found.append((f"base-{position}", blob))
    for layer in image.layers:
        if isinstance(layer.tar, RemoteLayer):
            found.append((layer.name, layer.tar.blob))
        else:
            blob = cache.blob(layer.digest)
            found.append((layer.name, blob if blob is not None else layer.tar))
    return found


def push_image(image: AssembledImage, destination: str, cache: RegistryCache, events: BuildEvents = NO_EVENTS,
               compression: Compression = Compression.gzip) -> Published | None:
    """Push image to destination (a tag); None, having sent nothing, when some layer has no source here."""
    started = time.monotonic()
    layers = sources(image, cache)
    if layers is None:
        return None
    with tempfile.TemporaryDirectory(prefix="imagekit-push-") as work:
        return _push(image, destination, cache, events, compression, _recompressed(layers, image, cache, compression,
                                                                                  Path(work)), started)


def _recompressed(layers: list[tuple[str, LayerTar | Blob]], image: AssembledImage, cache: RegistryCache,
                  compression: Compression, work: Path) -> list[tuple[str, LayerTar | Blob]]:
    """The layers, with those a cache image holds in another compression fetched here, to compress again."""
    kept: list[tuple[str, LayerTar | Blob]] = []
    for (name, source), diff_id in zip(layers, image.diff_ids, strict=True):
        if isinstance(source, Blob) and _compression_of(source.media_type) is not compression:
            kept.append((name, cache.fetch(RemoteLayer(diff_id, 0, 0, source), work)))
        else:
            kept.append((name, source))
    return kept


def _compression_of(media_type: str) -> Compression | None:
    if media_type in GZIP_TYPES:
        return Compression.gzip
    return Compression.zstd if media_type in ZSTD_TYPES else None


def _push(image: AssembledImage, destination: str, cache: RegistryCache, events: BuildEvents,
          compression: Compression, layers: list[tuple[str, LayerTar | Blob]], started: float) -> Published:
    reference = parse_reference(destination, "--tag", registry=True, digest=False)
    assert reference.host is not None
    host, repository = reference.host, reference.repository
    client = RegistryClient(host, timeout=120.0)
    client.ping()
    client.check_push(repository)
    local = [source for _, source in layers if isinstance(source, LayerTar)]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:  # zlib frees the GIL
        made = pool.map(lambda tar: compress_layer(tar, compression), local)
        compressed = dict(zip((tar.sha256 for tar in local), made, strict=True))
    descriptors, published = [], []
    for (name, source), diff_id in zip(layers, image.diff_ids, strict=True):
        if isinstance(source, Blob):  # in this compression (_recompressed): named by OCI's type, not Docker's
            if not client.blob_exists(repository, source.digest):
                cache.copy_blob(source, host, repository)
            digest, size, uploaded = source.digest, source.size, False
        else:
            blob = compressed[source.sha256]
            digest, size = blob.digest, blob.size
            uploaded = not client.blob_exists(repository, digest)
            if uploaded:
                client.upload(repository, digest, blob.path)
        descriptors.append({"mediaType": compression.media_type, "digest": digest, "size": size})
        published.append(PublishedLayer(diff_id=diff_id, digest=digest, size=size, uploaded=uploaded))
        events.stage(name, Stage.PUSHED, size)
    if not client.blob_exists(repository, image.config_digest):
        with tempfile.NamedTemporaryFile(prefix="imagekit-config-") as config:
            config.write(image.config)
            config.flush()
            client.upload(repository, image.config_digest, Path(config.name))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": image.config_digest, "size": len(image.config)},
        "layers": descriptors,
    }, sort_keys=True, separators=(",", ":")).encode()
    tag = reference.tag or "latest"
    digest = client.put_manifest(repository, tag, manifest, MANIFEST_MEDIA_TYPE)
    target = str(reference.with_tag(tag))
    return Published(reference=f"{target}@{digest}", digest=digest, layers=tuple(published),
                     seconds=round(time.monotonic() - started, 3))


def compress_layer(tar: LayerTar, compression: Compression) -> _Compressed:
    """The layer's blob, made once per layer and compression (kept in the imagekit cache by its diff ID)."""
    directory = cache_root() / "blobs"
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{tar.sha256.removeprefix('sha256:')}.{compression.value}"
    blob, record = directory / stem, directory / f"{stem}.json"
    if blob.is_file() and record.is_file():
        meta = json.loads(record.read_text())
        return _Compressed(blob, meta["digest"], meta["size"])
    digest = hashlib.sha256()
    temporary = blob.with_name(f".{blob.name}.{os.getpid()}.part")
    with open(tar.path, "rb") as source, open(temporary, "wb") as raw:
        hashing = _Hashing(raw, digest)
        if compression is Compression.zstd:
            import zstandard  # the `zstd` extra: only this trial's pushes need it

            zstandard.ZstdCompressor(level=ZSTD_LEVEL).copy_stream(source, cast(IO[bytes], hashing), read_size=1 << 20)
        else:
            with gzip.GzipFile(filename="", mode="wb", fileobj=hashing, mtime=0, compresslevel=GZIP_LEVEL) as out:
                shutil.copyfileobj(source, out, 1 << 20)
    os.replace(temporary, blob)
    compressed = _Compressed(blob, "sha256:" + digest.hexdigest(), blob.stat().st_size)
    record.write_text(json.dumps({"digest": compressed.digest, "size": compressed.size}))
    return compressed


class _Hashing(io.RawIOBase):
    """A file written through, hashing what goes by."""

    def __init__(self, raw: BinaryIO, digest: hashlib._Hash) -> None:
        self.raw = raw
        self.digest = digest

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return self.raw.write(data)
