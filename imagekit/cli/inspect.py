"""`imagekit inspect REF`: the image's layers, which step each belongs to, and their sizes."""
from __future__ import annotations

import os

import typer

from imagekit.inspection import SOURCES, describe
from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.spec.quantity import human_size

from .common import OutputFormat, emit_json, emit_text


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        reference: str = typer.Argument(..., help="image reference (local, or HOST/NAME:TAG in a registry)"),
        source: str = typer.Option(os.environ.get(contract.INSPECT_SOURCE, "auto"), "--source",
                                   help=f"where to look: {', '.join(SOURCES)}"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Show an image's layers, the step each belongs to, and sizes."""
        if source not in SOURCES:
            raise UsageError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
        data = describe(reference, source)
        if output is OutputFormat.json:
            emit_json(data)
            return
        title = f"{reference} ({data['source']}, {data['id'][:19]})"
        if data["pipeline"]:
            title += f": pipeline {data['pipeline']}, user {data['user'] or 'root'}"
        emit_text(title)
        emit_text(f"{'#':>3}  {'layer':<18} {'steps':<24} {'size':>10}  digest")
        for layer in data["layers"]:
            size = human_size(layer["size"]) if layer["size"] is not None else "?"
            emit_text(f"{layer['index']:>3}  {layer['name']:<18} {','.join(layer['steps']) or '-':<24} {size:>10}  "
                         f"{layer['digest'][:19]}")
        emit_text(f"total {human_size(data['total_size'])} ({data['size_kind']}) in {len(data['layers'])} layers")
