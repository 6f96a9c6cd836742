"""`imagekit inspect REF`: the image's layers, which step each belongs to, and their sizes; for an index (one
image per platform, as `build --platform A,B --push` leaves), each platform's, or the one --platform names."""
from __future__ import annotations

import os
from typing import Any

import typer

from imagekit.inspection import SOURCES, describe
from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.platforms import parse_platform
from imagekit_core.spec.quantity import human_size

from .common import OutputFormat, emit_json, emit_text

PLATFORM_HELP = ("one platform's image (linux/amd64, linux/arm64): from an index, its entry; in an engine, TAG or "
                 "TAG-<architecture> as `build --platform` names them; default: every platform of an index")


def image_lines(data: dict[str, Any], title: str) -> list[str]:
    """One image's table: title (with the pipeline and user), then a line per layer and the total."""
    if data["pipeline"]:
        title += f": pipeline {data['pipeline']}, user {data['user'] or 'root'}"
    lines = [title, f"{'#':>3}  {'layer':<18} {'steps':<24} {'size':>10}  digest"]
    for layer in data["layers"]:
        size = human_size(layer["size"]) if layer["size"] is not None else "?"
        lines.append(f"{layer['index']:>3}  {layer['name']:<18} {','.join(layer['steps']) or '-':<24} {size:>10}  "
                     f"{layer['digest'][:19]}")
    lines.append(f"total {human_size(data['total_size'])} ({data['size_kind']}) in {len(data['layers'])} layers")
    return lines


def index_lines(data: dict[str, Any]) -> list[str]:
    """An index: its digest and platforms, then each platform's table headed by the platform."""
    lines = [f"{data['reference']} (registry, index {data['digest'][:19]}): {', '.join(data['platforms'])}"]
    if data["skipped"]:
        lines.append(f"also in the index, not shown: {', '.join(data['skipped'])}")
    for platform, image in data["platforms"].items():
        lines += ["", *image_lines(image, f"{platform}: {image['digest'][:19]} (config {image['id'][:19]})")]
    return lines


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        reference: str = typer.Argument(..., help="image reference (local, or HOST/NAME:TAG in a registry)"),
        source: str = typer.Option(os.environ.get(contract.INSPECT_SOURCE, "auto"), "--source",
                                   help=f"where to look: {', '.join(SOURCES)}"),
        platform: str = typer.Option(None, "--platform", help=PLATFORM_HELP),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Show an image's layers, the step each belongs to, and sizes (each platform's, for an index)."""
        if source not in SOURCES:
            raise UsageError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
        data = describe(reference, source, parse_platform(platform) if platform else None)
        if output is OutputFormat.json:
            emit_json(data)
        elif "platforms" in data:
            emit_text("\n".join(index_lines(data)))
        else:
            emit_text("\n".join(image_lines(data, f"{data['reference']} ({data['source']}, {data['id'][:19]})")))
