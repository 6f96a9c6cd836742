"""A multi-platform image in a registry (an OCI image index, or Docker's manifest list): which of its entries
serves a platform, and the platform a config or an entry names. index_read.py reads the images behind it."""
from __future__ import annotations

from typing import Any

from imagekit_core.platforms import Platform, platform_named

from .registry import INDEX_TYPES


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
