"""Image references as both engines read them (the grammar of distribution/reference): which
tags are valid, and when a reference's first component is a registry host."""
from __future__ import annotations

import re

from imagekit_runtime.errors import UsageError

_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?$")


def is_registry_host(component: str) -> bool:
    """Whether a reference's first component names a registry (`127.0.0.1:5000`, `quay.io`,
    `localhost`) rather than a repository path (`imagekit/`)."""
    return "." in component or ":" in component or component == "localhost"


def check_tag(text: str) -> str:
    """text, if an engine can tag an image with it; else a UsageError saying how to write one."""
    if len(text) > 255 or not _IMAGE_REFERENCE.match(text):
        raise UsageError(f"--tag {text!r} is not an image reference: use [HOST[:PORT]/]NAME[:TAG], the name in "
                         f"lowercase, e.g. 127.0.0.1:5000/wordfreq:v1")
    return text
