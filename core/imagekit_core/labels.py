"""The names of imagekit's own labels, all from one domain: imagekit.dev.

Image and container labels (OCI image config, Docker containers) take the reverse-DNS form OCI
and Docker ask for, `dev.imagekit.<name>`; Kubernetes labels and annotations take the prefix form,
`imagekit.dev/<name>`. The build (imagekit/build/labels.py) fills the image labels, deploy sets the
pod labels and the local pods label their containers; all take the names from here. Nothing here
imports the build or deploy paths.
"""
from __future__ import annotations

DOMAIN = "imagekit.dev"
REVERSE_DOMAIN = ".".join(reversed(DOMAIN.split(".")))  # dev.imagekit


def image_label(name: str) -> str:
    """An OCI image or Docker container label: dev.imagekit.<name>."""
    return f"{REVERSE_DOMAIN}.{name}"


def kubernetes_label(name: str) -> str:
    """A Kubernetes label or annotation key: imagekit.dev/<name>."""
    return f"{DOMAIN}/{name}"


# Image labels (`imagekit inspect` reads them; docs/build.md lists them).
PIPELINE_LABEL = image_label("pipeline")  # the pipeline's name
STEPS_LABEL = image_label("steps")  # its steps, comma-separated
LAYERS_LABEL = image_label("layers")  # every layer imagekit laid out, the runtime base's too: digest, kind, name, steps
BASE_LAYERS_LABEL = image_label("base-layers")  # how many layers the base image and the runtime base have
SHARED_LABEL = image_label("shared-steps")  # steps that share layers because of the layer budget


def step_layers_label(step: str) -> str:
    """The image label holding the digests of one step's layers."""
    return image_label(f"step.{step}.layers")


# Kubernetes labels on every object deploy renders (docs/deploy.md).
POD_PIPELINE_LABEL = kubernetes_label("pipeline")
