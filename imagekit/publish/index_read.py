"""What a registry reference names, read back whole: one image, or an index (OCI image index, Docker manifest
list) with each platform's image, manifest and config; and the one image a platform gets from it, as an engine or
a kubelet picks it. Which entry of an index serves a platform is imagekit_core.platforms'; this module reads the
images for `inspect` and `sbom` (each platform's image, or the one `--platform` names).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, known_platform, platform_digests
from imagekit_core.references import parse_reference

from .registry import INDEX_TYPES, RegistryClient


class PlatformMismatch(UsageError):
    """The reference holds no image of the platform asked for (exit 2, like any usage error); `held` says what
    it holds instead, for a caller that words the message for its own flag."""

    def __init__(self, message: str, held: str = "") -> None:
        super().__init__(message)
        self.held = held


@dataclass(frozen=True)
class RegistryImage:
    """One image manifest in a registry, its digest and its config."""

    manifest: dict[str, Any]
    digest: str
    config: dict[str, Any]

    @property
    def platform(self) -> str:
        """os/architecture[/variant] as its config says (`?` where it says nothing)."""
        return platform_name(self.config)


@dataclass(frozen=True)
class RegistryIndex:
    """An index and the images it names of the platforms imagekit reads, by platform (linux/amd64), in its order."""

    digest: str
    images: dict[str, RegistryImage]
    skipped: tuple[str, ...]  # what else it names (another platform, an attestation: unknown/unknown)


def is_index(manifest: dict[str, Any]) -> bool:
    """An index names manifests; an image manifest names a config and layers."""
    return manifest.get("mediaType") in INDEX_TYPES or ("manifests" in manifest and "config" not in manifest)


def platform_name(fields: dict[str, Any]) -> str:
    """os/architecture[/variant] of a config or an index entry's platform."""
    name = f"{fields.get('os') or '?'}/{fields.get('architecture') or '?'}"
    return f"{name}/{fields['variant']}" if fields.get("variant") else name


def index_entries(index: dict[str, Any]) -> tuple[dict[Platform, str], tuple[str, ...]]:
    """The digests of the images an index names, by platform (platform_digests); and the platforms of the entries
    it names that imagekit does not read (os/architecture[/variant]: an attestation's is unknown/unknown)."""
    entries = platform_digests(index)
    chosen = set(entries.values())
    skipped = tuple(platform_name(entry.get("platform") or {}) for entry in index.get("manifests", [])
                    if entry.get("digest") not in chosen)
    return entries, skipped


def shown(client: RegistryClient, repository: str, reference: str) -> str:
    """HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST, as a user wrote it."""
    return f"{client.host}/{repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"


def image_at(client: RegistryClient, repository: str, digest: str) -> RegistryImage:
    """The image whose manifest has digest, with its config."""
    manifest, digest = client.manifest_and_digest(repository, digest)
    if is_index(manifest):
        raise UsageError(f"{client.host}/{repository}@{digest} is an index inside an index: imagekit reads one level "
                         "(fix: inspect the inner index by its digest)")
    return RegistryImage(manifest, digest, client.config(repository, manifest))


def read_reference(client: RegistryClient, repository: str, reference: str) -> RegistryImage | RegistryIndex:
    """What reference (a tag or a digest) names: one image, or an index with each platform's image."""
    manifest, digest = client.manifest_and_digest(repository, reference)
    if not is_index(manifest):
        return RegistryImage(manifest, digest, client.config(repository, manifest))
    entries, skipped = index_entries(manifest)
    if not entries:
        raise UsageError(f"{shown(client, repository, reference)} is an index of no platform imagekit reads "
                         f"({', '.join(skipped) or 'it names no image'}) (fix: a reference built for linux/amd64 "
                         "or linux/arm64)")
    return RegistryIndex(digest, {str(platform): image_at(client, repository, entry) for platform, entry in entries.items()},
                         skipped)


def platform_manifest(client: RegistryClient, repository: str, reference: str, platform: Platform) -> RegistryImage:
    """platform's image under reference: the index's entry for it, or reference itself when that is one image of
    that platform; PlatformMismatch (exit 2) naming what it holds instead."""
    manifest, digest = client.manifest_and_digest(repository, reference)
    name = shown(client, repository, reference)
    if is_index(manifest):
        entries, skipped = index_entries(manifest)
        if platform not in entries:
            held = ", ".join([*map(str, entries), *skipped]) or "no image"
            raise PlatformMismatch(f"{name} has no {platform} image: its index holds {held} (fix: --platform one of "
                                   f"those, or push {platform}'s image with `imagekit build --platform {platform} --push`)",
                                   held=f"its index holds {held}")
        return image_at(client, repository, entries[platform])
    image = RegistryImage(manifest, digest, client.config(repository, manifest))
    if known_platform(image.config) != platform:
        raise PlatformMismatch(f"{name} is one image, of {image.platform}, not {platform} (fix: leave out --platform, or "
                               f"name an image or index built for {platform}: `imagekit build --platform {platform}`)",
                               held=f"it is one image, of {image.platform}")
    return image


def read_registry(reference: str, platform: Platform | None) -> tuple[RegistryClient, str, RegistryImage | RegistryIndex]:
    """What REF (`inspect`/`sbom`) names in its registry, asked once it answers: with platform, that platform's image
    (platform_manifest); else one image, or an index read whole. Also the client and the repository, to read on."""
    parsed = parse_reference(reference, "REF", registry=True)
    assert parsed.host is not None  # registry=True
    client = RegistryClient(parsed.host)
    client.ping()
    tag = parsed.digest or parsed.tag or "latest"
    if platform is not None:
        return client, parsed.repository, platform_manifest(client, parsed.repository, tag, platform)
    return client, parsed.repository, read_reference(client, parsed.repository, tag)


def platform_reference(reference: str, platform: Platform, flag: str = "image") -> str:
    """REF's image of platform in its registry as HOST/NAME@sha256:… (platform_manifest: the index's entry, or
    REF itself when it is one image of that platform), what an engine pulls by digest so that no tag moves."""
    parsed = parse_reference(reference, flag, registry=True)
    assert parsed.host is not None  # registry=True
    image = platform_manifest(RegistryClient(parsed.host), parsed.repository, parsed.digest or parsed.tag or "latest",
                              platform)
    return f"{parsed.name}@{image.digest}"
