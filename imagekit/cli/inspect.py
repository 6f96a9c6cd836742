"""`imagekit inspect REF`: the image's layers, which step each belongs to, and their sizes."""
from __future__ import annotations

import json
import os
from typing import Any

import typer

from imagekit.build.engines import get_backend
from imagekit.labels import BASE_LAYERS_LABEL, LAYERS_LABEL, PIPELINE_LABEL, SHARED_LABEL
from imagekit.publish.registry import RegistryClient
from imagekit.references import parse_reference
from imagekit_runtime import contract
from imagekit_runtime.errors import EnvironmentMissing, UsageError
from imagekit_runtime.spec.quantity import human_size

from .common import OutputFormat, emit_json, emit_text

SOURCES = ("auto", "docker", "buildah", "registry")


def _from_engine(name: str, reference: str) -> dict[str, Any] | None:
    engine = get_backend(name)
    try:
        engine.check()
    except EnvironmentMissing:
        return None
    if engine.image_id(reference) is None:
        return None
    info = engine.inspect(reference)
    return {"source": name, "id": info.id, "digest": info.manifest_digest, "diff_ids": list(info.diff_ids),
            "sizes": list(info.layer_sizes), "size_kind": "uncompressed", "labels": info.labels, "user": info.user,
            "entrypoint": list(info.entrypoint), "created": info.created}


def _from_registry(reference: str) -> dict[str, Any]:
    parsed = parse_reference(reference, "REF", registry=True)
    assert parsed.host is not None  # registry=True
    client = RegistryClient(parsed.host)
    client.ping()
    manifest = client.manifest(parsed.repository, parsed.digest or parsed.tag or "latest")
    config = client.config(parsed.repository, manifest)
    layers = manifest.get("layers", [])
    image_config = config.get("config") or {}
    return {"source": "registry", "id": manifest["config"]["digest"], "digest": None,
            "diff_ids": list(config.get("rootfs", {}).get("diff_ids", [])),
            "sizes": [layer["size"] for layer in layers], "size_kind": "compressed",
            "labels": image_config.get("Labels") or {}, "user": image_config.get("User", ""),
            "entrypoint": image_config.get("Entrypoint") or [], "created": config.get("created", "")}


def describe(reference: str, source: str = "auto") -> dict[str, Any]:
    """Layers of reference with the step each belongs to, from a local engine or a registry."""
    found = None
    if source in ("auto", "docker", "buildah"):
        for name in (("docker", "buildah") if source == "auto" else (source,)):
            found = _from_engine(name, reference)
            if found:
                break
    if found is None and source in ("auto", "registry"):
        try:
            found = _from_registry(reference)
        except UsageError:
            if source == "registry":
                raise
    if found is None:
        raise UsageError(f"image {reference} not found (looked in: {source if source != 'auto' else 'docker, buildah, registry'})")
    labels = found["labels"]
    try:
        planned = {entry["digest"]: entry for entry in json.loads(labels.get(LAYERS_LABEL, "[]"))}
    except ValueError:
        planned = {}
    base_layers = int(labels.get(BASE_LAYERS_LABEL, "-1"))
    layers = []
    for index, diff_id in enumerate(found["diff_ids"]):
        entry = planned.get(diff_id, {})
        if not entry and base_layers >= 0 and index == len(found["diff_ids"]) - 1 and index >= base_layers:
            # The pipeline layer is added together with the labels, so they can't name its digest.
            entry = {"kind": "pipeline", "name": "pipeline", "steps": []}
        size = found["sizes"][index] if index < len(found["sizes"]) else None
        layers.append({"index": index, "digest": diff_id, "kind": entry.get("kind", "base"),
                       "name": entry.get("name", f"base-{index}"), "steps": entry.get("steps", []), "size": size})
    known = [layer["size"] for layer in layers if layer["size"] is not None]
    steps: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step in layer["steps"]:
            record = steps.setdefault(step, {"layers": [], "size": 0})
            record["layers"].append(layer["index"])
            record["size"] += layer["size"] or 0
    return {
        "reference": reference, "source": found["source"], "id": found["id"], "digest": found["digest"],
        "pipeline": labels.get(PIPELINE_LABEL), "created": found["created"], "user": found["user"],
        "entrypoint": found["entrypoint"], "size_kind": found["size_kind"], "total_size": sum(known),
        "shared_steps": [s for s in labels.get(SHARED_LABEL, "").split(",") if s],
        "layers": layers, "steps": steps,
        "labels": {k: v for k, v in labels.items() if k != LAYERS_LABEL},
    }


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
