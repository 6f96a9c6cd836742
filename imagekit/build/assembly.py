"""The image, assembled by imagekit: the runtime base's config plus one layer per tarball.

Step layers are imagekit's own deterministic tarballs (tarball.py), so each layer's
digest is known before any engine sees it; the image config (labels naming those
digests, history, created time) is written here, once, and an engine only loads the
result (`Backend.load`). That is what ko and jib do: no Containerfile, no container
per instruction, and the same bytes on every engine.

Two on-disk forms, one per kind of engine:
- an OCI image layout (buildah/skopeo: containers-storage reuses the blobs it holds);
- a `docker save` archive (the Docker engine: `docker load` skips layers it holds).
Both leave out the base image's layer blobs, and the archive the layers the engine
already holds: engines look layers up by digest before they open a blob.
"""
from __future__ import annotations

import copy
import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .reuse import RemoteLayer
from .tarball import LayerTar, link_or_copy

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# The OCI image config's fields (image-spec config.md): what both engines keep of a base's config.
# Anything else (Docker's container, container_config, docker_version, a config's Hostname, …)
# says how the base was built, and one engine keeps it where another drops it: left out, so the
# same base gives the same config, and so the same image ID, on every engine.
_OCI_FIELDS = ("created", "author", "architecture", "os", "os.version", "os.features", "variant",
               "config", "rootfs", "history")
_OCI_RUNTIME_FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                       "StopSignal", "ArgsEscaped")
_OCI_HISTORY_FIELDS = ("created", "created_by", "author", "comment", "empty_layer")


def oci_config(config: dict[str, Any]) -> dict[str, Any]:
    """config with only the OCI fields, and no empty ones."""
    kept = {name: copy.deepcopy(config[name]) for name in _OCI_FIELDS if config.get(name) not in (None, "", [], {})}
    runtime = kept.get("config") or {}
    kept["config"] = {name: runtime[name] for name in _OCI_RUNTIME_FIELDS
                      if runtime.get(name) not in (None, "", {}) and (name != "ArgsEscaped" or runtime[name])}
    kept["history"] = [{name: entry[name] for name in _OCI_HISTORY_FIELDS if entry.get(name) not in (None, "", False)}
                       for entry in kept.get("history") or ()]
    return kept


@dataclass(frozen=True)
class BaseImage:
    """An image an engine holds, as a starting point: its config as stored, and its layer sizes."""

    id: str
    config: dict[str, Any]  # OCI image config (Docker's is a superset): rootfs.diff_ids, config, history
    layer_sizes: tuple[int, ...]  # bytes of each uncompressed layer, in diff_ids order

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return tuple(self.config.get("rootfs", {}).get("diff_ids", ()))


@dataclass(frozen=True)
class NewLayer:
    name: str  # deps-count, code-count, pipeline
    description: str  # its history entry
    tar: LayerTar | RemoteLayer  # remote: in a cache image's registry, fetched only if an engine must load it

    @property
    def digest(self) -> str:
        return self.tar.sha256

    @property
    def local(self) -> LayerTar:
        if isinstance(self.tar, RemoteLayer):
            raise AssertionError(f"layer {self.name} is in a registry, not fetched")
        return self.tar

    @property
    def file_size(self) -> int:
        return self.tar.tar_bytes if isinstance(self.tar, RemoteLayer) else self.tar.path.stat().st_size


@dataclass(frozen=True)
class AssembledImage:
    base: BaseImage
    layers: tuple[NewLayer, ...]
    config: bytes  # canonical JSON

    @property
    def config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()

    @property
    def diff_ids(self) -> tuple[str, ...]:
        return self.base.diff_ids + tuple(layer.digest for layer in self.layers)

    @property
    def manifest(self) -> bytes:
        """Its OCI manifest (canonical JSON), layers uncompressed: what an OCI layout of it holds."""
        return _manifest(self)

    @property
    def manifest_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


def chain_ids(diff_ids: tuple[str, ...]) -> list[str]:
    """The OCI ChainID of every prefix: what an engine keys a stack of layers by."""
    chains: list[str] = []
    for diff_id in diff_ids:
        chain = diff_id if not chains else "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
        chains.append(chain)
    return chains


def assemble(base: BaseImage, layers: tuple[NewLayer, ...], labels: dict[str, str], created: str) -> AssembledImage:
    """base + layers, with labels added to the base's and one history entry per new layer."""
    config = oci_config(base.config)
    config["created"] = created
    runtime = config.setdefault("config", {})
    runtime["Labels"] = {**(runtime.get("Labels") or {}), **labels}
    config["rootfs"] = {"type": "layers", "diff_ids": [*base.diff_ids, *(layer.digest for layer in layers)]}
    config["history"] = [*(config.get("history") or ()),
                         *({"created": created, "created_by": layer.description, "comment": "imagekit build"}
                           for layer in layers)]
    encoded = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return AssembledImage(base=base, layers=layers, config=encoded)


def _manifest(image: AssembledImage) -> bytes:
    base = [{"mediaType": LAYER_MEDIA_TYPE, "digest": digest, "size": size}
            for digest, size in zip(image.base.diff_ids, image.base.layer_sizes, strict=True)]
    ours = [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.file_size} for layer in image.layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": image.config_digest, "size": len(image.config)},
        "layers": base + ours,
    }
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def write_oci_layout(image: AssembledImage, directory: Path) -> Path:
    """An OCI image layout at directory (replaced), its one manifest tagged `latest`."""
    blobs = directory / "blobs" / "sha256"
    if directory.exists():
        for blob in blobs.glob("*"):
            blob.unlink()
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / image.config_digest.removeprefix("sha256:")).write_bytes(image.config)
    for layer in image.layers:
        if isinstance(layer.tar, LayerTar):  # a reused layer not fetched is one the engine holds
            link_or_copy(layer.tar.path, blobs / layer.digest.removeprefix("sha256:"))
    manifest = image.manifest
    manifest_digest = image.manifest_digest
    (blobs / manifest_digest.removeprefix("sha256:")).write_bytes(manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST_MEDIA_TYPE, "digest": manifest_digest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}
    (directory / "index.json").write_text(json.dumps(index, sort_keys=True))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return directory


def docker_archive(image: AssembledImage, tag: str, held: int) -> Iterator[bytes]:
    """A `docker save` archive of image tagged `tag`, as a stream, holding only the layers after the
    first `held` (the engine has those): nothing is written to disk."""
    entries = [f"{layer.digest.removeprefix('sha256:')}/layer.tar" for layer in image.layers]
    base_entries = [f"{digest.removeprefix('sha256:')}/layer.tar" for digest in image.base.diff_ids]
    config_name = f"{image.config_digest.removeprefix('sha256:')}.json"
    manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": base_entries + entries}]
    yield from _tar_member(config_name, image.config)
    for layer, entry in list(zip(image.layers, entries, strict=False))[held:]:
        yield from _tar_member(entry, layer.local.path)
    yield from _tar_member("manifest.json", json.dumps(manifest).encode())
    yield b"\0" * (2 * tarfile.BLOCKSIZE)  # end of archive


def _tar_member(name: str, content: bytes | Path) -> Iterator[bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content) if isinstance(content, bytes) else content.stat().st_size
    info.mode = 0o644
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    if isinstance(content, bytes):
        yield content
    else:
        with open(content, "rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk
    if info.size % tarfile.BLOCKSIZE:
        yield b"\0" * (tarfile.BLOCKSIZE - info.size % tarfile.BLOCKSIZE)
