"""`pod up --platform P`: the image of platform P that each rendered image reference stands for.

A rendering names one reference; a build for several platforms leaves each platform's image under its own
name (imagekit_core.platforms.platform_tag: `REF-<arch>`; REF in Docker is this machine's platform's) and
pushes an index under REF. `imagekit run --platform` resolves its image here too. For each reference, in order:

  1. REF itself, when the engine holds it and it is P's;
  2. the engine's `REF-<arch>` (a reference by tag only), when it is P's;
  3. in a registry: P's image out of the index REF names (or REF's single image), pulled by its digest
     (`HOST/NAME@sha256:…`), so the tag REF in the engine keeps naming the image it named.

Whatever is chosen must be P's (the engine's Os/Architecture of the image), else `pod up` stops with one
line naming the image, its platform and the fix. The registry is read by the caller's lookup (the
Distribution API client belongs to the build toolkit, which the deploy package does not import).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, host, platform_tag
from imagekit_core.references import parse_reference

# A registry reference and a platform -> that platform's image as HOST/NAME@sha256:<manifest digest>.
RegistryLookup = Callable[[str, Platform], str]


class ImageStore(Protocol):
    """What the resolution asks of the engine (emulator.engine.Engine)."""

    def platform_of(self, ref: str) -> str | None:
        """`os/architecture` of the engine's image ref; None when the engine does not hold it."""

    def pull(self, ref: str, platform: str) -> None:
        """Fetch ref for that platform into the engine."""


def _fix(ref: str, platform: Platform) -> str:
    both = ",".join(str(each) for each in dict.fromkeys((host(), platform)))
    return (f"fix: build it for {platform} too (`imagekit build PIPELINE --platform {both} --platform-base "
            f"{platform}=BASE --tag {ref}`, with --push for a registry), or render with --image of a {platform} "
            "image")


def platform_image(ref: str, platform: Platform, store: ImageStore, registry: RegistryLookup | None) -> str:
    """The reference the pods of platform run instead of ref (ref itself when it is platform's already)."""
    wanted = str(platform)
    parsed = parse_reference(ref, "image")
    found = store.platform_of(ref)
    if found == wanted:
        return ref
    sibling = platform_tag(ref, platform) if parsed.digest is None else None
    sibling_found = store.platform_of(sibling) if sibling else None
    if sibling and sibling_found == wanted:
        return sibling
    if parsed.host is not None and registry is not None:
        chosen = registry(ref, platform)
        if store.platform_of(chosen) is None:
            store.pull(chosen, wanted)
        pulled = store.platform_of(chosen)
        if pulled != wanted:
            raise UsageError(f"image {chosen} (from {ref}) is {pulled}, not {wanted} ({_fix(ref, platform)})")
        return chosen
    if found is None:
        raise UsageError(f"image {ref} is not in the Docker engine and names no registry to pull its {wanted} "
                         f"image from ({_fix(ref, platform)})")
    beside = f" and {sibling} is {sibling_found}" if sibling and sibling_found else \
        (f" and the engine holds no {sibling}" if sibling else "")
    raise UsageError(f"image {ref} is {found}, not {wanted}{beside} ({_fix(ref, platform)})")


def template_images(workload: Mapping[str, Any]) -> list[str]:
    """The images the workload's pods run (init containers' included), each once."""
    pod = (workload.get("spec") or {}).get("template", {}).get("spec", {})
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    return list(dict.fromkeys(str(container["image"]) for container in containers if container.get("image")))


def with_images(workload: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the workload whose containers run images[ref] instead of ref (the others unchanged)."""
    copied: dict[str, Any] = copy.deepcopy(dict(workload))
    pod = copied.get("spec", {}).get("template", {}).get("spec", {})
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        if container.get("image") in images:
            container["image"] = images[container["image"]]
    return copied


def for_platform(workload: Mapping[str, Any], platform: Platform, store: ImageStore,
                 registry: RegistryLookup | None) -> dict[str, Any]:
    """The workload with each image replaced by its platform's (resolved once per reference)."""
    images = {ref: platform_image(ref, platform, store, registry) for ref in template_images(workload)}
    return with_images(workload, images)
