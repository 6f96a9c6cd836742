"""What publishing a locally built image reports: the reference and digest it got, and each layer's upload.
(One destination exists, a registry: registry.py.)"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
