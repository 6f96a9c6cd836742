"""`imagekit sbom REF [--step NAME]`: the CycloneDX SBOMs an image carries, read from the image itself.

Each step with requirements has /opt/imagekit/sbom/<step>.cdx.json in its deps layer, the runtime
base /opt/imagekit/sbom/runtime.cdx.json in its runtime layer, the S3 client (s3 pipelines) s3-client.cdx.json in
its own layer. From an engine the file is read from
the image's file system (Docker: a created, never started container; buildah: a mount); from a
registry, the layer blob that holds it is fetched (the labels say which) and the file taken out.
"""
from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from typing import Any

import typer

from imagekit.build.engines import get_backend
from imagekit.build.labels import ImageLabels
from imagekit.build.plan import SBOM_ROOT
from imagekit.build.s3client import S3_CLIENT
from imagekit.build.sbom import RUNTIME_SBOM, sbom_file
from imagekit.inspection import SOURCES
from imagekit.publish.registry import RegistryClient
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.references import parse_reference

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
    def __init__(self, reference: str) -> None:
        parsed = parse_reference(reference, "REF", registry=True)
        assert parsed.host is not None  # registry=True
        self.client = RegistryClient(parsed.host)
        self.client.ping()
        self.repository = parsed.repository
        self.manifest = self.client.manifest(parsed.repository, parsed.digest or parsed.tag or "latest")
        self.config = self.client.config(parsed.repository, self.manifest)
        self.labels: dict[str, str] = (self.config.get("config") or {}).get("Labels") or {}

    def read(self, name: str) -> bytes | None:
        diff_ids = list(self.config.get("rootfs", {}).get("diff_ids", []))
        digest = _layer_digest(self.labels, name)
        if digest not in diff_ids:
            return None
        index = diff_ids.index(digest)
        blob = self.client.blob(self.repository, self.manifest["layers"][index]["digest"])
        return _file_in_layer(blob, str(SBOM_ROOT / sbom_file(name)))


def read_sboms(reference: str, source: str, step: str | None) -> dict[str, Any]:
    """name -> SBOM document, for step (or every SBOM in the image)."""
    for engine_name in (("docker", "buildah") if source == "auto" else (source,)):
        if engine_name == "registry":
            continue
        engine = get_backend(engine_name)
        try:
            engine.check()
        except EnvironmentMissing:
            if source != "auto":
                raise
            continue
        if engine.image_id(reference) is None:
            continue
        labels = engine.inspect(reference).labels
        names = [step] if step else sbom_names(labels)
        if step:
            _layer_digest(labels, step)  # a step without one is a usage error
        return {name: _parse(engine.read_file(reference, str(SBOM_ROOT / sbom_file(name))), reference, name)
                for name in names}
    if source not in ("auto", "registry"):
        raise UsageError(f"image {reference} is not in {source}")
    try:
        registry = _Registry(reference)
    except UsageError:
        raise UsageError(f"image {reference} not found (looked in: "
                         f"{'docker, buildah, registry' if source == 'auto' else source})") from None
    names = [step] if step else sbom_names(registry.labels)
    return {name: _parse(registry.read(name), reference, name) for name in names}


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
    ) -> None:
        """Print the CycloneDX 1.5 SBOM of one step (--step), or {name: SBOM} for every one, from the image."""
        if source not in SOURCES:
            raise UsageError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
        documents = read_sboms(reference, source, step)
        payload = documents[step] if step else documents
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
