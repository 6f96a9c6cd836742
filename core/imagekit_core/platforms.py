"""Image platforms (`linux/amd64`, `linux/arm64`): parsed and spelled here, the three names each goes by, and
the platform an image config or an index entry names (an OCI image index, a Docker or buildah manifest list).

An OCI image index and `--platform` say `linux/arm64`; the kernel, Python's `platform.machine()` and
manylinux wheel tags say `aarch64`; Debian (mmdebstrap, dpkg) says `arm64`. Every caller converts through
this module.
"""
from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .references import parse_reference

# OCI architecture -> (machine, as wheel tags and uname name it; Debian architecture)
_KNOWN = {
    "amd64": ("x86_64", "amd64"),
    "arm64": ("aarch64", "arm64"),
}
_BY_MACHINE = {machine: architecture for architecture, (machine, _) in _KNOWN.items()}


@dataclass(frozen=True, order=True)
class Platform:
    os: str
    architecture: str  # OCI's: amd64, arm64

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"

    @property
    def machine(self) -> str:
        """What `uname -m`, `platform.machine()` and manylinux wheel tags call it: x86_64, aarch64."""
        return _KNOWN[self.architecture][0]

    @property
    def debian(self) -> str:
        """What Debian calls it (mmdebstrap --architectures): amd64, arm64."""
        return _KNOWN[self.architecture][1]


KNOWN = ", ".join(f"linux/{architecture}" for architecture in _KNOWN)  # as a fix names them


def platform_named(text: str) -> Platform | None:
    """`linux/amd64` or `linux/arm64`; None for anything else (a variant such as `linux/arm64/v8` too: none is
    supported)."""
    parts = text.strip().split("/")
    if len(parts) != 2 or parts[0] != "linux" or parts[1] not in _KNOWN:
        return None
    return Platform(parts[0], parts[1])


def parse_platform(text: str, flag: str = "--platform") -> Platform:
    """A platform named on the command line; another is refused naming the flag."""
    platform = platform_named(text)
    if platform is None:
        raise UsageError(f"{flag} {text!r} is not a platform imagekit builds for (fix: one of {KNOWN})")
    return platform


def parse_platforms(text: str, flag: str = "--platform") -> tuple[Platform, ...]:
    """A comma-separated list, each once, in the order given."""
    platforms = [parse_platform(item, flag) for item in text.split(",") if item.strip()]
    if not platforms:
        raise UsageError(f"{flag} names no platform (fix: e.g. {flag} linux/amd64,linux/arm64)")
    return tuple(dict.fromkeys(platforms))


def platform_of_machine(machine: str) -> Platform:
    """The platform of a machine name (what a base image's Python reports); an unknown one is refused."""
    architecture = _BY_MACHINE.get(machine)
    if architecture is None:
        raise UsageError(f"machine {machine!r} is not one imagekit builds for (fix: a base image for "
                         f"{' or '.join(_BY_MACHINE)})")
    return Platform("linux", architecture)


def platform_tag(reference: str, platform: Platform) -> str:
    """The tag one platform's image of a multi-platform REF goes by: REF's tag with the architecture after a
    dash (127.0.0.1:5000/wordfreq:v2 -> 127.0.0.1:5000/wordfreq:v2-arm64)."""
    parsed = parse_reference(reference, "--tag", digest=False)
    return str(parsed.with_tag(f"{parsed.tag or 'latest'}-{platform.architecture}"))


def host() -> Platform:
    """This machine's platform."""
    return platform_of_machine(host_platform.machine())


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
