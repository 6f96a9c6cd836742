"""Which image in a local engine (docker, buildah) is a reference's for a platform (`inspect`/`sbom --platform`).

`imagekit build --platform A,B` leaves each platform's image in the engine under TAG-<architecture>
(imagekit_core.platforms.platform_tag; older builds: the first platform's under TAG only), and TAG names one of
them (Docker) or a manifest list of them (buildah). So `--platform P` takes TAG when it is an image of P, else
TAG-<architecture> when that is of P; never a pull. An engine image's platform is its stored config's
os/architecture.
"""
from __future__ import annotations

from imagekit.build.backend import Backend
from imagekit.publish.index_read import PlatformMismatch, platform_name
from imagekit_core.errors import EnvironmentMissing
from imagekit_core.platforms import Platform, known_platform, platform_tag
from imagekit_core.references import parse_reference


def image_platform(engine: Backend, reference: str) -> tuple[Platform | None, str]:
    """The platform of an engine image, when imagekit reads it, and its name as the config says it."""
    try:
        config = engine.base_image(engine.inspect(reference)).config
    except EnvironmentMissing:  # a config the engine will not hand over as stored
        return None, "an unknown platform"
    return known_platform(config), platform_name(config)


def sibling(reference: str, platform: Platform) -> str | None:
    """TAG-<architecture>, the engine tag `build --platform` gives platform's image; None for a digest reference."""
    if parse_reference(reference, "REF").digest:
        return None
    return platform_tag(reference, platform)


def local_image(engine: Backend, reference: str, platform: Platform | None) -> str | None:
    """The engine image to read for reference: reference itself (when a platform is asked, only if of it), else
    TAG-<architecture> of that platform; None when the engine holds neither. PlatformMismatch when the engine
    holds reference, of another platform, and no TAG-<architecture> of platform."""
    if platform is None:
        return reference if engine.image_id(reference) is not None else None
    other = sibling(reference, platform)
    held: list[str] = []
    for candidate in (reference, *([other] if other else [])):
        if engine.image_id(candidate) is None:
            continue
        found, name = image_platform(engine, candidate)
        if found == platform:
            return candidate
        held.append(f"{candidate} is {name}")
    if not held:
        return None
    alternative = f" and it has no {other}" if other and len(held) == 1 else ""
    raise PlatformMismatch(f"{engine.name} holds no {platform} image of {reference}: {', '.join(held)}{alternative} "
                           f"(fix: leave out --platform, build it with `imagekit build --platform {platform}`, or read "
                           f"a pushed index with --source registry)")
