"""Image references, parsed in this one place: `[HOST[:PORT]/]PATH[:TAG][@DIGEST]`.

The grammar is distribution/reference's, which both engines and every registry follow:
path components in lowercase, a tag of at most 128 word characters, dots and dashes, a
digest `sha256:` and 64 hex digits. The first component names a registry host only when it
holds a `.` or a `:`, is `localhost`, or is a bracketed IPv6 address (`imagekit/x` is a path,
`127.0.0.1:5000/x` a host). Build, publish and deploy all take references from here; nothing
here imports them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from imagekit_core.errors import UsageError

_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"
_REFERENCE = re.compile(
    rf"^(?:(?P<host>{_HOST})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
NAME_MAX = 255  # characters of HOST/PATH, as distribution/reference allows
EXAMPLE = "127.0.0.1:5000/wordfreq:v1"


def is_registry_host(component: str) -> bool:
    """Whether a reference's first component names a registry (`127.0.0.1:5000`, `quay.io`,
    `localhost`, `[::1]:5000`) rather than a repository path (`imagekit/`)."""
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class Reference:
    """A parsed image reference. host is None when the reference names no registry."""

    host: str | None
    repository: str  # the path, without the host
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """HOST/PATH (or PATH): what an engine calls the repository."""
        return f"{self.host}/{self.repository}" if self.host else self.repository

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=tag, digest=None)

    def __str__(self) -> str:
        text = self.name + (f":{self.tag}" if self.tag else "")
        return text + (f"@{self.digest}" if self.digest else "")


def _match(text: str) -> Reference | None:
    match = _REFERENCE.match(text)
    if match is None:
        return None
    host, path = match["host"], match["path"]
    if host is not None and not is_registry_host(host):
        # Without a dot, a colon or `localhost`, the first component is part of the path and
        # is written as one: `imagekit/x` is the path imagekit/x, `Imagekit/x` is refused.
        if not re.fullmatch(_COMPONENT, host):
            return None
        host, path = None, f"{host}/{path}"
    reference = Reference(host, path, match["tag"], match["digest"])
    return reference if len(reference.name) <= NAME_MAX else None


def unpinned_warning(text: str, flag: str, *, required: bool) -> str | None:
    """None when text pins a digest (`…@sha256:…`). Else the warning to print, or (required: --require-digest)
    a UsageError: a tag names whatever was pushed last, so two pods, or a pod and its restart, may run two images."""
    if parse_reference(text, flag).digest:
        return None
    problem = f"{flag} {text} names a tag, not a digest: a pod started later may run another image"
    fix = "pass the REF@sha256:… that `imagekit build --push` prints"
    if required:
        raise UsageError(f"{problem} (fix: {fix}; --require-digest refuses a tag)")
    return f"{problem} ({fix}; --require-digest refuses it)"


def parse_reference(text: str, flag: str, *, registry: bool = False, digest: bool = True) -> Reference:
    """text as a Reference, or a one-line UsageError naming flag (`--tag`, `--image`, `REF`) and the fix.

    registry: the reference must name a registry host (to push to or read from it).
    digest: whether `@sha256:…` may end it (a tag to give an image cannot).
    """
    parsed = _match(text.strip()) if text.strip() == text else None
    form = "[HOST[:PORT]/]NAME[:TAG]" + ("[@sha256:DIGEST]" if digest else "")
    if parsed is None or (parsed.digest and not digest):
        raise UsageError(f"{flag} {text!r} is not an image reference (fix: write {form}, the name in lowercase, "
                         f"e.g. {EXAMPLE})")
    if registry and parsed.host is None:
        raise UsageError(f"{flag} {text!r} names no registry (fix: write HOST[:PORT]/NAME[:TAG], e.g. {EXAMPLE})")
    return parsed
