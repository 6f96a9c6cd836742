"""Image labels, written and read here only: the OCI annotations every registry UI shows, and imagekit's own
(named in imagekit/labels.py; ImageLabels reads them back).

imagekit's labels say which layer belongs to which step, so `imagekit inspect`
and a deploy can tell what changed between two images without pulling them.
Nothing here may carry a secret: a git remote's user and password are dropped.
"""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from imagekit_core import proc
from imagekit_core.errors import ImagekitError
from imagekit_core.labels import (
    BASE_LAYERS_LABEL,
    LAYERS_LABEL,
    PIPELINE_LABEL,
    SHARED_LABEL,
    STEPS_LABEL,
    step_layers_label,
)
from imagekit_core.spec import PipelineSpec


@dataclass(frozen=True)
class SourceInfo:
    source: str
    revision: str
    version: str


def _git(directory: Path, *args: str) -> str:
    # Read-only metadata lookups; failures (no git, not a repository) just mean "unknown".
    try:
        result = proc.run(["git", "-C", str(directory), *args], check=False, timeout=10)
    except (ImagekitError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout or b"").decode(errors="replace").strip() if result.returncode == 0 else ""


def strip_credentials(url: str) -> str:
    """https://user:token@host/x -> https://host/x (scp-like git@host:x stays as is)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def source_info(spec: PipelineSpec, version: str | None = None) -> SourceInfo:
    directory = spec.directory
    revision = _git(directory, "rev-parse", "HEAD")
    remote = strip_credentials(_git(directory, "config", "--get", "remote.origin.url"))
    if revision and _git(directory, "status", "--porcelain", "--", "."):
        revision += "-dirty"
    # Only a remote names the source: a local path would differ between two copies of one pipeline.
    source = remote
    if version is None:
        version = _git(directory, "describe", "--tags", "--always", "--dirty") or "0.0.0"
    return SourceInfo(source=source, revision=revision or "unknown", version=version)


def commit_time(directory: Path) -> int | None:
    """When the last commit of directory's git repository was made (None: not in a repository),
    the image's `created` when SOURCE_DATE_EPOCH is unset: a CI build is then reproducible, as ko's."""
    value = _git(directory, "log", "-1", "--format=%ct")
    return int(value) if value.isdigit() else None


# `created` when neither SOURCE_DATE_EPOCH nor a git commit gives a time (as ko's default): two copies of
# one pipeline then build to one image ID wherever they are and whenever they were copied.
DEFAULT_CREATED_EPOCH = 0


def created_time(timestamp: int | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(DEFAULT_CREATED_EPOCH if timestamp is None else timestamp))


def oci_labels(spec: PipelineSpec, info: SourceInfo, base: str, base_id: str, created: str) -> dict[str, str]:
    """base_id: the base image's ID (its config's digest), the one digest of a local image every engine agrees on."""
    labels = {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.revision": info.revision,
        "org.opencontainers.image.version": info.version,
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.base.name": base,
        "org.opencontainers.image.base.digest": base_id,
        PIPELINE_LABEL: spec.name,
        STEPS_LABEL: ",".join(step.name for step in spec.packaged_steps),
    }
    if info.source:
        labels["org.opencontainers.image.source"] = info.source
    if spec.description:
        labels["org.opencontainers.image.description"] = spec.description
    if spec.licenses:
        labels["org.opencontainers.image.licenses"] = spec.licenses
    return labels


def layer_labels(layers: list[dict[str, object]], base_layers: int, shared_steps: tuple[str, ...],
                 steps: list[str]) -> dict[str, str]:
    """Per-step layer digests, and the whole layer map as JSON (what `imagekit inspect` reads)."""
    labels = {
        LAYERS_LABEL: json.dumps(layers, separators=(",", ":"), sort_keys=True),
        BASE_LAYERS_LABEL: str(base_layers),
    }
    if shared_steps:
        labels[SHARED_LABEL] = ",".join(shared_steps)
    for step in steps:
        digests = [str(layer["digest"]) for layer in layers
                   if isinstance(layer_steps := layer.get("steps", []), list) and step in layer_steps]
        labels[step_layers_label(step)] = ",".join(digests)
    return labels


@dataclass(frozen=True)
class LaidOutLayer:
    """One layer imagekit laid out, as the image's labels name it."""

    digest: str  # its diff ID
    kind: str    # base, runtime, s3-client, deps, code, pipeline
    name: str
    steps: tuple[str, ...] = ()
    key: str = ""  # deps layers: what they are made of (deps.deps_layer_key), for build --cache-from
    size: int = 0  # deps layers: bytes of file content
    tar_bytes: int = 0  # deps layers: the uncompressed tar's length


@dataclass(frozen=True)
class ImageLabels:
    """What imagekit's labels say of an image (the reading side of oci_labels and layer_labels); an image
    imagekit did not build, or a label that does not parse, reads as empty."""

    pipeline: str | None = None
    steps: tuple[str, ...] = ()
    layers: tuple[LaidOutLayer, ...] = ()
    base_layers: int | None = None  # layers of the base image and the runtime base
    shared_steps: tuple[str, ...] = ()

    @classmethod
    def read(cls, labels: Mapping[str, str]) -> ImageLabels:
        try:
            entries = json.loads(labels.get(LAYERS_LABEL, "[]"))
            layers = tuple(LaidOutLayer(str(e["digest"]), str(e.get("kind", "")), str(e.get("name", "")),
                                        tuple(e.get("steps") or ()), str(e.get("key", "")), int(e.get("size", 0)),
                                        int(e.get("tar_bytes", 0))) for e in entries if "digest" in e)
        except (ValueError, TypeError, AttributeError):
            layers = ()
        base = labels.get(BASE_LAYERS_LABEL, "")
        return cls(pipeline=labels.get(PIPELINE_LABEL), steps=_names(labels.get(STEPS_LABEL, "")), layers=layers,
                   base_layers=int(base) if base.isdigit() else None,
                   shared_steps=_names(labels.get(SHARED_LABEL, "")))

    def layer_at(self, index: int, diff_id: str, count: int) -> LaidOutLayer:
        """The image's layer `index` of `count` (diff ID `diff_id`) as imagekit laid it out; a layer it did not
        lay out is the base image's."""
        for layer in self.layers:
            if layer.digest == diff_id:
                return layer
        if self.base_layers is not None and index == count - 1 and index >= self.base_layers:
            # The pipeline layer is added together with the labels, so they can't name its digest.
            return LaidOutLayer(diff_id, "pipeline", "pipeline")
        return LaidOutLayer(diff_id, "base", f"base-{index}")


def shown_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels as a person reads them: all but the layer map (ImageLabels.layers tells it better)."""
    return {key: value for key, value in labels.items() if key != LAYERS_LABEL}


def _names(text: str) -> tuple[str, ...]:
    return tuple(name for name in text.split(",") if name)
