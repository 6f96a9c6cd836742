"""`imagekit push REF`: publish a locally built image to the registry REF names."""
from __future__ import annotations

import os
from collections.abc import Mapping

import typer

from imagekit.build.backend import Backend
from imagekit.build.engines import BACKENDS, get_backend
from imagekit.build.labels import ImageLabels
from imagekit.publish.index_push import push_index
from imagekit.publish.publisher import Published
from imagekit.publish.registry import RegistryPublisher
from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, parse_platforms, platform_tag
from imagekit_core.references import parse_reference
from imagekit_core.spec.quantity import human_size

from .common import OutputFormat, emit_json, emit_text, stderr
from .progress import progress_on


def publish(engine: Backend, image: str, destination: str) -> Published:
    engine.check()
    return RegistryPublisher().publish(engine, image, destination)


def layer_names(engine: Backend, image: str) -> list[tuple[str, str]]:
    """(diff ID, layer name) of the layers imagekit laid out, from the image's labels (none for other images)."""
    return [(layer.digest, layer.name) for layer in ImageLabels.read(engine.inspect(image).labels).layers]


def print_published(published: Published, names: Mapping[str, str] | None = None) -> None:
    """What was sent, per layer and in all, on stderr (the reference is the caller's to print on stdout).
    names: a layer's diff ID -> its name."""
    for layer in published.layers:
        state = "uploaded" if layer.uploaded else "already there"
        name = (names or {}).get(layer.diff_id, "")
        stderr.print(f"  {name:<18} {layer.digest[:19]}  {human_size(layer.size):>10}  {state}")
    uploaded = [layer for layer in published.layers if layer.uploaded]
    stderr.print(f"pushed {published.reference} in {published.seconds:.1f}s: {len(uploaded)}/{len(published.layers)} "
                 f"layers uploaded, {human_size(published.uploaded_bytes)} of {human_size(published.total_bytes)}")


def push_reported(engine: Backend, image: str, destination: str) -> Published:
    """Push image with its layers' progress, then what was sent, on stderr."""
    names = layer_names(engine, image)
    with progress_on(engine, stderr, names):
        published = publish(engine, image, destination)
    print_published(published, dict(names))
    return published


def push_platforms(engine: Backend, source: str, reference: str, platforms: tuple[Platform, ...],
                   output: OutputFormat) -> None:
    """Each platform's image (SOURCE-<arch>), then the index naming them under REF; stdout: REF@<index digest>."""
    pushed = {}
    for platform in platforms:
        image = platform_tag(source, platform)
        if engine.image_id(image) is None:
            raise UsageError(f"--platform {platform}: {engine.name} holds no {image} (fix: build it with "
                             f"`imagekit build --platform {platform} --tag {source}`)")
        pushed[platform] = push_reported(engine, image, platform_tag(reference, platform))
    index = push_index(reference, pushed)
    if output is OutputFormat.json:
        emit_json(index.to_json())
    else:
        emit_text(index.reference)


def register(app: typer.Typer) -> None:
    @app.command()
    def push(
        reference: str = typer.Argument(..., help="HOST[:PORT]/NAME[:TAG] of a local image, pushed to that registry"),
        source: str = typer.Option(None, "--source", help="local image to push [default: REF itself]"),
        backend: str = typer.Option(os.environ.get(contract.BACKEND, "docker"), "--backend", "-b",
                                    help=f"engine that holds the image: {' or '.join(BACKENDS)} (${contract.BACKEND})"),
        platform: str = typer.Option("", "--platform", show_default=False, metavar="PLATFORMS",
                                     help="push the images `build --platform` made (SOURCE-<arch> each) as "
                                          "REF-<arch>, then one index under REF for them all [default: a "
                                          "manifest list's platforms (buildah), else one image]"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Push to a registry with credentials from docker config.json; print REF@sha256:… on stdout."""
        parse_reference(reference, "REF", registry=True, digest=not platform)  # before any engine call
        engine = get_backend(backend)
        engine.check()
        listed = engine.listed_platforms(source or reference) if not platform else ()
        if platform or listed:  # a manifest list (buildah's, from `build --platform`) is pushed whole
            push_platforms(engine, source or reference, reference, parse_platforms(platform) if platform else listed,
                           output)
            return
        published = push_reported(engine, source or reference, reference)
        if output is OutputFormat.json:
            emit_json(published.to_json())
        else:
            emit_text(published.reference)
