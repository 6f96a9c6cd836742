"""A multi-platform image in a registry (an OCI image index, or Docker's manifest list): which of its images
serves a platform. A multi-platform base (`base:` naming an index) and `inspect`/`sbom` of a multi-platform
reference read it here."""
from __future__ import annotations

from typing import Any

from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, platform_named
from imagekit_core.references import parse_reference

from .registry import INDEX_TYPES, RegistryClient


def is_index(manifest: dict[str, Any]) -> bool:
    """An index names manifests; an image manifest names a config and layers."""
    return manifest.get("mediaType") in INDEX_TYPES or ("manifests" in manifest and "config" not in manifest)


def known_platform(fields: dict[str, Any]) -> Platform | None:
    """The platform a config (or an index entry's `platform`) names, when it is one imagekit builds for;
    linux/arm64/v8 is linux/arm64 (the variant every arm64 machine has, which some tools name)."""
    if fields.get("variant") not in (None, "", "v8"):
        return None
    return platform_named(f"{fields.get('os', '')}/{fields.get('architecture', '')}")


def platform_digests(index: dict[str, Any]) -> dict[Platform, str]:
    """Each platform's image manifest digest, for the platforms imagekit builds for (an attestation entry,
    `unknown/unknown`, and other platforms are left out); a platform listed twice keeps its first."""
    found: dict[Platform, str] = {}
    for entry in index.get("manifests", []):
        platform = known_platform(entry.get("platform") or {})
        if platform is not None and isinstance(entry.get("digest"), str):
            found.setdefault(platform, entry["digest"])
    return found


def platform_image(reference: str, platform: Platform, flag: str) -> str | None:
    """REF's image for platform as HOST/NAME@sha256:… when REF (in a registry) is multi-platform; None when
    it is a single image, whatever its platform (the build checks that). An index without that platform is
    refused, naming the ones it has."""
    parsed = parse_reference(reference, flag, registry=True)
    assert parsed.host is not None  # registry=True
    client = RegistryClient(parsed.host)
    manifest, _ = client.manifest_and_digest(parsed.repository, parsed.digest or parsed.tag or "latest")
    if not is_index(manifest):
        return None
    digests = platform_digests(manifest)
    if platform not in digests:
        has = ", ".join(str(each) for each in sorted(digests)) or "none imagekit builds for"
        raise UsageError(f"{flag} {reference}: no {platform} image in it (it has {has}) (fix: a base with a "
                         f"{platform} image, or --platform-base {platform}=REF)")
    return f"{parsed.host}/{parsed.repository}@{digests[platform]}"
