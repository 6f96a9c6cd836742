"""What `imagekit inspect` shows of an image: its layers, the step each belongs to, their sizes; read from a
local engine or a registry, the layer map from the image's labels (build/labels.py). A registry reference that
names an index (one image per platform) shows each platform's image, or the one `--platform` names."""
from __future__ import annotations

from typing import Any

from imagekit.build.engines import get_backend
from imagekit.build.labels import ImageLabels, shown_labels
from imagekit.engine_platform import local_image
from imagekit.publish.index_read import PlatformMismatch, RegistryImage, read_registry
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.platforms import Platform

SOURCES = ("auto", "docker", "buildah", "registry")


def _from_engine(name: str, reference: str, platform: Platform | None) -> dict[str, Any] | None:
    engine = get_backend(name)
    try:
        engine.check()
    except EnvironmentMissing:
        return None
    local = local_image(engine, reference, platform)
    if local is None:
        return None
    info = engine.inspect(local)
    return {"reference": local, "source": name, "id": info.id, "digest": info.manifest_digest,
            "diff_ids": list(info.diff_ids), "sizes": list(info.layer_sizes), "size_kind": "uncompressed",
            "labels": info.labels, "user": info.user, "entrypoint": list(info.entrypoint), "created": info.created}


def _registry_image(reference: str, image: RegistryImage, digest: str | None) -> dict[str, Any]:
    manifest, config = image.manifest, image.config
    layers = manifest.get("layers", [])
    image_config = config.get("config") or {}
    return {"reference": reference, "source": "registry", "id": manifest["config"]["digest"], "digest": digest,
            "diff_ids": list(config.get("rootfs", {}).get("diff_ids", [])),
            "sizes": [layer["size"] for layer in layers], "size_kind": "compressed",
            "labels": image_config.get("Labels") or {}, "user": image_config.get("User", ""),
            "entrypoint": image_config.get("Entrypoint") or [], "created": config.get("created", "")}


def _from_registry(reference: str, platform: Platform | None) -> dict[str, Any]:
    """One image (an index's for platform, when given), or {digest, platforms: image by platform} for an index."""
    _, _, read = read_registry(reference, platform)
    if isinstance(read, RegistryImage):
        return _registry_image(reference, read, read.digest if platform is not None else None)
    return {"digest": read.digest, "skipped": list(read.skipped),
            "platforms": {name: _registry_image(reference, image, image.digest) for name, image in read.images.items()}}


def _found(reference: str, source: str, platform: Platform | None) -> dict[str, Any]:
    """What source holds of reference: the engines' image first (auto), then the registry's. A platform asked for
    that one place lacks is looked for in the next; when none has it, that is the error."""
    mismatch: PlatformMismatch | None = None
    if source in ("auto", "docker", "buildah"):
        for name in (("docker", "buildah") if source == "auto" else (source,)):
            try:
                found = _from_engine(name, reference, platform)
            except PlatformMismatch as exc:
                if source != "auto":
                    raise
                mismatch = mismatch or exc
                continue
            if found:
                return found
    if source in ("auto", "registry"):
        try:
            return _from_registry(reference, platform)
        except PlatformMismatch:
            raise
        except UsageError:
            if source == "registry":
                raise
    if mismatch is not None:
        raise mismatch
    raise UsageError(f"image {reference} not found (looked in: {source if source != 'auto' else 'docker, buildah, registry'})")


def describe(reference: str, source: str = "auto", platform: Platform | None = None) -> dict[str, Any]:
    """Layers of reference with the step each belongs to, from a local engine or a registry; for a registry index
    (and no platform), {reference, source, digest, platforms: that for each platform's image, skipped}."""
    found = _found(reference, source, platform)
    if "platforms" in found:
        return {"reference": reference, "source": "registry", "digest": found["digest"], "skipped": found["skipped"],
                "platforms": {name: _layout(image) for name, image in found["platforms"].items()}}
    return _layout(found)


def _layout(found: dict[str, Any]) -> dict[str, Any]:
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
        "reference": found["reference"], "source": found["source"], "id": found["id"], "digest": found["digest"],
        "pipeline": read.pipeline, "created": found["created"], "user": found["user"],
        "entrypoint": found["entrypoint"], "size_kind": found["size_kind"], "total_size": sum(known),
        "shared_steps": list(read.shared_steps),
        "layers": layers, "steps": steps,
        "labels": shown_labels(labels),
    }
