"""`imagekit sbom REF [--step NAME]`: the CycloneDX SBOMs an image carries, read from the image itself.

Each step with requirements has /opt/imagekit/sbom/<step>.cdx.json in its deps layer, the runtime
base /opt/imagekit/sbom/runtime.cdx.json in its runtime layer, the S3 client (s3 pipelines) s3-client.cdx.json in
its own layer. From an engine the file is read from
the image's file system (Docker: a created, never started container; buildah: a mount); from a
registry, the layer blob that holds it is fetched (the labels say which) and the file taken out. A registry
reference that names an index (one image per platform) gives each platform's, keyed by platform, or the one
`--platform` names; in an engine, `--platform` takes TAG or TAG-<architecture> (engine_platform.py).
"""
from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from dataclasses import dataclass
from typing import Any

import typer

from imagekit.build.engines import get_backend
from imagekit.build.labels import ImageLabels
from imagekit.build.plan import SBOM_ROOT
from imagekit.build.s3client import S3_CLIENT
from imagekit.build.sbom import RUNTIME_SBOM, sbom_file
from imagekit.cli.inspect import PLATFORM_HELP
from imagekit.engine_platform import local_image
from imagekit.inspection import SOURCES
from imagekit.publish.index_read import PlatformMismatch, RegistryImage, read_registry
from imagekit.publish.registry import RegistryClient
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.platforms import Platform, parse_platform

# SBOMs of no step, each in the layer of its own name: the runtime base's, the S3 client's (s3 pipelines only).
OWN_LAYER_SBOMS = (RUNTIME_SBOM, S3_CLIENT)


def sbom_names(labels: dict[str, str]) -> list[str]:
    """runtime, s3-client when the image has it, then every step with a deps layer (from the image's labels)."""
    read = ImageLabels.read(labels)
    steps = [step for layer in read.layers if layer.kind == "deps" for step in layer.steps]
    held = {layer.name for layer in read.layers}
    own = [name for name in OWN_LAYER_SBOMS if name == RUNTIME_SBOM or name in held]
    order = list(read.steps)
    return [*own, *sorted(steps, key=lambda step: order.index(step) if step in order else len(order))]


def _layer_digest(labels: dict[str, str], name: str) -> str:
    """The diff ID of the layer holding name's SBOM (the runtime base's: its layer named `runtime`)."""
    for layer in ImageLabels.read(labels).layers:
        if (name in OWN_LAYER_SBOMS and layer.name == name) or (layer.kind == "deps" and name in layer.steps):
            return layer.digest
    raise UsageError(f"step {name!r} has no deps layer in this image, so no SBOM: "
                     f"choose one of {', '.join(sbom_names(labels))}")


def _file_in_layer(blob: bytes, path: str) -> bytes | None:
    data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            if member.name.lstrip("./") == path.lstrip("/") and member.isfile():
                handle = archive.extractfile(member)
                return handle.read() if handle else None
    return None


class _Registry:
    """One image in a registry, read for its SBOMs."""

    def __init__(self, client: RegistryClient, repository: str, image: RegistryImage) -> None:
        self.client = client
        self.repository = repository
        self.manifest = image.manifest
        self.config = image.config
        self.labels: dict[str, str] = (self.config.get("config") or {}).get("Labels") or {}

    def read(self, name: str) -> bytes | None:
        diff_ids = list(self.config.get("rootfs", {}).get("diff_ids", []))
        digest = _layer_digest(self.labels, name)
        if digest not in diff_ids:
            return None
        index = diff_ids.index(digest)
        blob = self.client.blob(self.repository, self.manifest["layers"][index]["digest"])
        return _file_in_layer(blob, str(SBOM_ROOT / sbom_file(name)))

    def documents(self, reference: str, step: str | None) -> dict[str, Any]:
        names = [step] if step else sbom_names(self.labels)
        return {name: _parse(self.read(name), reference, name) for name in names}


@dataclass(frozen=True)
class Sboms:
    """name -> SBOM document of one image; or, for an index read whole, platform -> (name -> SBOM document)."""

    documents: dict[str, Any]
    by_platform: bool = False

    def payload(self, step: str | None) -> Any:
        """What `sbom` prints: with --step that step's document (per platform, for an index)."""
        if step is None:
            return self.documents
        if self.by_platform:
            return {platform: documents[step] for platform, documents in self.documents.items()}
        return self.documents[step]


def _registry_images(reference: str, platform: Platform | None) -> tuple[RegistryClient, str, dict[str, RegistryImage]]:
    """The registry's images of reference: {platform: image} for an index read whole, {"": image} for one image."""
    client, repository, read = read_registry(reference, platform)
    return client, repository, {"": read} if isinstance(read, RegistryImage) else dict(read.images)


def _from_engines(reference: str, source: str, step: str | None,
                  platform: Platform | None) -> tuple[Sboms | None, PlatformMismatch | None]:
    """The SBOMs of the first engine image of reference (of platform, when given); a platform mismatch seen in auto."""
    mismatch: PlatformMismatch | None = None
    for engine_name in (("docker", "buildah") if source == "auto" else (source,)):
        if engine_name == "registry":
            continue
        engine = get_backend(engine_name)
        try:
            engine.check()
            local = local_image(engine, reference, platform)
        except (EnvironmentMissing, PlatformMismatch) as exc:
            if source != "auto":
                raise
            mismatch = mismatch or (exc if isinstance(exc, PlatformMismatch) else None)
            continue
        if local is None:
            continue
        labels = engine.inspect(local).labels
        names = [step] if step else sbom_names(labels)
        if step:
            _layer_digest(labels, step)  # a step without one is a usage error
        return Sboms({name: _parse(engine.read_file(local, str(SBOM_ROOT / sbom_file(name))), local, name)
                      for name in names}), None
    return None, mismatch


def read_sboms(reference: str, source: str, step: str | None, platform: Platform | None = None) -> Sboms:
    """The SBOMs of step (or every SBOM) of the image reference names (of platform, when given), or of each
    platform's image of a registry index."""
    found, mismatch = _from_engines(reference, source, step, platform)
    if found is not None:
        return found
    if source not in ("auto", "registry"):
        raise UsageError(f"image {reference} is not in {source}")
    try:
        client, repository, images = _registry_images(reference, platform)
    except PlatformMismatch:
        raise
    except UsageError:
        if mismatch is not None:
            raise mismatch from None
        raise UsageError(f"image {reference} not found (looked in: "
                         f"{'docker, buildah, registry' if source == 'auto' else source})") from None
    read = {name: _Registry(client, repository, image).documents(reference, step) for name, image in images.items()}
    return Sboms(read[""]) if "" in read else Sboms(read, by_platform=True)


def _parse(content: bytes | None, reference: str, name: str) -> Any:
    if content is None:
        raise UsageError(f"{reference} has no {SBOM_ROOT / sbom_file(name)}: was it built by an imagekit "
                         "that writes SBOMs? (build it again)")
    return json.loads(content)


def register(app: typer.Typer) -> None:
    @app.command()
    def sbom(
        reference: str = typer.Argument(..., metavar="REF", help="image reference"),
        step: str = typer.Option(None, "--step", "-s",
                                 help=f"one step's SBOM ({RUNTIME_SBOM}: the runtime base's); default: all"),
        source: str = typer.Option("auto", "--source", help=f"where the image is: {', '.join(SOURCES)}"),
        platform: str = typer.Option(None, "--platform", help=PLATFORM_HELP),
    ) -> None:
        """Print the CycloneDX 1.5 SBOM of one step (--step), or {name: SBOM} for every one, from the image; for an
        index, {platform: that} for each platform's image (or the one --platform names)."""
        if source not in SOURCES:
            raise UsageError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
        payload = read_sboms(reference, source, step, parse_platform(platform) if platform else None).payload(step)
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
