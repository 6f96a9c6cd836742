"""What `imagekit inspect` shows of an image: its layers, the step each belongs to, their sizes; read from a
local engine or a registry, the layer map from the image's labels (build/labels.py)."""
from __future__ import annotations

from typing import Any

from imagekit.build.engines import get_backend
from imagekit.build.labels import ImageLabels, shown_labels
from imagekit.publish.registry import RegistryClient
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.references import parse_reference

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
    read = ImageLabels.read(labels)
    layers = []
    for index, diff_id in enumerate(found["diff_ids"]):
        laid_out = read.layer_at(index, diff_id, len(found["diff_ids"]))
        size = found["sizes"][index] if index < len(found["sizes"]) else None
        layers.append({"index": index, "digest": diff_id, "kind": laid_out.kind, "name": laid_out.name,
                       "steps": list(laid_out.steps), "size": size})
    known = [layer["size"] for layer in layers if layer["size"] is not None]
    steps: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for step in layer["steps"]:
            record = steps.setdefault(step, {"layers": [], "size": 0})
            record["layers"].append(layer["index"])
            record["size"] += layer["size"] or 0
    return {
        "reference": reference, "source": found["source"], "id": found["id"], "digest": found["digest"],
        "pipeline": read.pipeline, "created": found["created"], "user": found["user"],
        "entrypoint": found["entrypoint"], "size_kind": found["size_kind"], "total_size": sum(known),
        "shared_steps": list(read.shared_steps),
        "layers": layers, "steps": steps,
        "labels": shown_labels(labels),
    }
