"""Which engine builds: the one place that knows the implementations of backend.py's interfaces."""
from __future__ import annotations

from imagekit_core.errors import UsageError

from .backend import Backend
from .buildah import BuildahBackend
from .docker import DockerBackend

BACKENDS = ("docker", "buildah")


def get_backend(name: str) -> Backend:
    if name == "docker":
        return DockerBackend()
    if name == "buildah":
        return BuildahBackend()
    raise UsageError(f"unknown backend {name!r}: use docker or buildah")
