"""One reference for several platforms: an OCI image index over the images already pushed, one per platform.

Each platform's image is pushed first, under a tag of its own (REF-amd64, REF-arm64: how a person or a
tool finds one platform's image); their layers that do not depend on the platform (the pipeline, the
steps' code, the runtime) are the same blobs, sent once. Then the index, naming each image's manifest
with its platform, goes under REF itself: an engine or a kubelet pulling REF gets its own platform's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform
from imagekit_core.references import parse_reference

from .publisher import Published
from .registry import OCI_INDEX, RegistryClient


@dataclass(frozen=True)
class PublishedIndex:
    reference: str  # REF@sha256:<index digest>
    digest: str
    images: dict[str, Published]  # by platform

    def to_json(self) -> dict[str, object]:
        return {"reference": self.reference, "digest": self.digest,
                "images": {platform: pushed.to_json() for platform, pushed in self.images.items()}}


def push_index(destination: str, images: dict[Platform, Published]) -> PublishedIndex:
    """The index of images (each already pushed to destination's repository) under destination's tag. An
    image whose config says another platform than the one it is listed for is refused before the index is
    written: a node would run it and fail with `exec format error`."""
    reference = parse_reference(destination, "--tag", registry=True, digest=False)
    assert reference.host is not None
    client = RegistryClient(reference.host)
    manifests = []
    for platform, pushed in sorted(images.items()):
        body, media_type, digest = client.manifest_bytes(reference.repository, pushed.digest)
        config = client.config(reference.repository, json.loads(body))
        actual = f"{config.get('os')}/{config.get('architecture')}"
        if actual != str(platform):
            raise UsageError(f"{pushed.reference or digest}: a {actual} image, not {platform} (fix: push the "
                             f"{platform} image as {platform}'s, e.g. one built with --platform {platform})")
        manifests.append({"mediaType": media_type, "digest": digest, "size": len(body),
                          "platform": {"architecture": platform.architecture, "os": platform.os}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
                       sort_keys=True, separators=(",", ":")).encode()
    tag = reference.tag or "latest"
    digest = client.put_manifest(reference.repository, tag, index, OCI_INDEX)
    return PublishedIndex(reference=f"{reference.with_tag(tag)}@{digest}", digest=digest,
                          images={str(platform): pushed for platform, pushed in sorted(images.items())})
