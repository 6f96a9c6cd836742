"""`imagekit push REF`: publish a locally built image to the registry REF names."""
from __future__ import annotations

import os
import sys

import typer

from imagekit.build.backend import BACKENDS, Backend, get_backend
from imagekit.publish.publisher import Published
from imagekit.publish.registry import RegistryPublisher
from imagekit_runtime import contract
from imagekit_runtime.quantity import human_size

from .common import OutputFormat, emit_json, stderr


def publish(engine: Backend, image: str, destination: str) -> Published:
    engine.check()
    return RegistryPublisher().publish(engine, image, destination)


def print_published(published: Published) -> None:
    """What was sent on stderr, and REF@sha256:… alone on stdout: the one result a script wants."""
    uploaded = [layer for layer in published.layers if layer.uploaded]
    stderr.print(f"pushed in {published.seconds:.1f}s: {len(uploaded)}/{len(published.layers)} layers uploaded, "
                 f"{human_size(published.uploaded_bytes)} of {human_size(published.total_bytes)}")
    sys.stdout.write(published.reference + "\n")


def register(app: typer.Typer) -> None:
    @app.command()
    def push(
        reference: str = typer.Argument(..., help="HOST[:PORT]/NAME[:TAG] of a local image, pushed to that registry"),
        source: str = typer.Option(None, "--source", help="local image to push, if not REF itself"),
        backend: str = typer.Option(os.environ.get(contract.BACKEND, "docker"), "--backend", "-b",
                                    help=f"engine that holds the image: {' or '.join(BACKENDS)}"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Push to a registry with credentials from docker config.json; print REF@sha256:…"""
        engine = get_backend(backend)
        published = publish(engine, source or reference, reference)
        if output is OutputFormat.json:
            emit_json(published.to_json())
        else:
            print_published(published)
