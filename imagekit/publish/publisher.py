"""The publish contract: put a locally built image somewhere under a reference.

One interface, one module per destination (registry.py). Whatever applies to
every destination wraps a Publisher instead of living inside one.
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass

from imagekit.build.backend import Backend


@dataclass(frozen=True)
class PublishedLayer:
    diff_id: str
    digest: str  # of the blob at the destination (usually compressed)
    size: int
    uploaded: bool  # False: the destination had it already (or mounted it from another repository)


@dataclass(frozen=True)
class Published:
    reference: str  # REF@sha256:...
    digest: str
    layers: tuple[PublishedLayer, ...]
    seconds: float

    @property
    def uploaded_bytes(self) -> int:
        return sum(layer.size for layer in self.layers if layer.uploaded)

    @property
    def total_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"uploaded_bytes": self.uploaded_bytes, "total_bytes": self.total_bytes,
                               "uploaded_layers": sum(1 for layer in self.layers if layer.uploaded)}


class Publisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, backend: Backend, image: str, destination: str) -> Published:
        """Publish local image `image` (held by backend) as `destination`."""
