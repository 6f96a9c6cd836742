"""`imagekit build PIPELINE --tag REF`: one image, one deps and one code layer per step."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from imagekit.build.backend import BACKENDS, get_backend
from imagekit.build.builder import BuildOptions, BuildResult, build_image
from imagekit.build.plan import DEFAULT_LAYER_BUDGET
from imagekit.references import parse_reference
from imagekit_runtime import contract
from imagekit_runtime.errors import UsageError
from imagekit_runtime.quantity import human_size
from imagekit_runtime.spec import load_pipeline

from .common import OutputFormat, emit_json, stderr
from .push import print_published, publish


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since 1970")
    return int(value)


def print_layers(result: BuildResult) -> None:
    stderr.print(f"{'#':>3}  {'layer':<18} {'steps':<24} {'size':>10}  status")
    for layer in result.layers:
        if layer.kind == "base":
            continue
        if layer.cached:
            status = "reused (cache)"
        elif layer.unchanged:
            status = "rebuilt, same digest"
        else:
            status = "built"
        size = human_size(layer.size) if layer.size is not None else "?"
        steps = ",".join(layer.steps) or "-"
        stderr.print(f"{layer.index:>3}  {layer.name:<18} {steps:<24} {size:>10}  {status}  {layer.digest[:19]}")


def register(app: typer.Typer) -> None:
    @app.command()
    def build(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        tag: str = typer.Option(..., "--tag", "-t", help="image reference to tag the result with"),
        backend: str = typer.Option(os.environ.get(contract.BACKEND, "docker"), "--backend", "-b",
                                    help=f"image engine: {' or '.join(BACKENDS)}"),
        base: str = typer.Option(None, "--base", help="base image (default: the pipeline's `base`)"),
        push: bool = typer.Option(False, "--push", help="push to the registry named by --tag"),
        layer_budget: int = typer.Option(DEFAULT_LAYER_BUDGET, "--layer-budget",
                                         help="most layers in the image; above it the smallest steps share layers"),
        version: str = typer.Option(None, "--version", help="org.opencontainers.image.version (default: git describe)"),
        no_cache: bool = typer.Option(False, "--no-cache", help="ignore the engine's and imagekit's caches"),
        python_version: str = typer.Option(None, "--python-version",
                                           help="the base image's Python (default: asked from the image)"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Build PIPELINE into one image: base, per step a deps and a code layer, then the pipeline.

        SOURCE_DATE_EPOCH fixes every timestamp the engine lets us fix (all of them with buildah).
        """
        # A tag no engine accepts, or that names no registry to push to, fails now, not after the build.
        parse_reference(tag, "--tag", registry=push, digest=False)
        spec = load_pipeline(pipeline)
        engine = get_backend(backend)
        options = BuildOptions(tag=tag, base=base, layer_budget=layer_budget, timestamp=source_date_epoch(),
                               version=version, no_cache=no_cache, python_version=python_version)
        stderr.print(f"building {spec.name} ({len(spec.steps)} steps) with {engine.name} as {tag}")
        result = build_image(spec, engine, options)
        if output is OutputFormat.text:
            print_layers(result)
            if result.shared_steps:
                stderr.print(f"layer budget {result.layer_budget}: {', '.join(result.shared_steps)} share layers")
            reused = len(result.reused)
            stderr.print(f"built {tag} ({result.image_id[:19]}) in {result.timings['total']:.1f}s: "
                         f"{len([layer for layer in result.layers if layer.kind != 'base'])} layers, {reused} reused")
        payload = result.to_json()
        if push:
            published = publish(engine, tag, tag)
            payload["pushed"] = published.to_json()
            if output is OutputFormat.text:
                print_published(published)
        if output is OutputFormat.json:
            emit_json(payload)
