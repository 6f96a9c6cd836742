"""The emulator's Secrets: what `kubectl create secret generic NAME` would hold, given to `imagekit pod up --secret`.

    --secret NAME=FILE   the keys of an env file (KEY=VALUE a line, `#` comments), as `--from-env-file` reads one
    --secret NAME        the host's S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
                         read from the environment of the `imagekit pod` call that creates the pod

A pod template's `envFrom: [{secretRef: {name: NAME}}]` gets those keys as variables (its own `env` wins, as on a
kubelet). The set's state keeps only where each Secret comes from (a file's path, or the host); the values are read
when a container is created and go into its environment only: never into the state, a label or a log.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from imagekit_core import contract
from imagekit_core.errors import UsageError

HOST = ""  # the source of a Secret taken from the host's environment
_KEY = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def parse_secret_flags(values: list[str]) -> dict[str, str]:
    """--secret NAME[=FILE] flags: Secret name -> absolute env-file path, or HOST."""
    secrets: dict[str, str] = {}
    for value in values:
        name, equals, file = value.partition("=")
        if not _NAME.match(name):
            raise UsageError(f"--secret {value!r}: {name!r} is not a Secret name (fix: --secret NAME=FILE or "
                             "--secret NAME, NAME as the rendering's envFrom secretRef names it)")
        if equals and not Path(file).is_file():
            raise UsageError(f"--secret {name}={file}: no such file (fix: an env file of KEY=VALUE lines)")
        secrets[name] = str(Path(file).resolve()) if equals else HOST
    return secrets


def _from_file(name: str, path: str) -> dict[str, str]:
    values: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"Secret {name}: {path} can't be read ({exc.strerror}) (fix: `imagekit pod up --secret "
                         f"{name}=FILE` with a readable file)") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, equals, value = text.partition("=")
        if not equals or not _KEY.match(key.strip()):
            # The line may hold a credential: say where, never what.
            raise UsageError(f"Secret {name}: {path} line {number} is not KEY=VALUE (fix: one KEY=VALUE a line)")
        values[key.strip()] = value
    return values


def _from_host(name: str) -> dict[str, str]:
    values = {key: os.environ[key] for key in contract.S3_CREDENTIALS if os.environ.get(key)}
    if not values:
        raise UsageError(f"Secret {name}: the environment holds none of {', '.join(contract.S3_CREDENTIALS)} "
                         f"(fix: export them, or `imagekit pod up --secret {name}=FILE`)")
    return values


def secret_values(names: tuple[str, ...], sources: dict[str, str], pod: str) -> dict[str, str]:
    """The variables the Secrets named by a container's envFrom give it, in order (a later one wins)."""
    values: dict[str, str] = {}
    for name in names:
        if name not in sources:
            raise UsageError(f"pod {pod}: envFrom names Secret {name!r}, which the emulator was not given "
                             f"(fix: `imagekit pod up --secret {name}=FILE`, or `--secret {name}` for the host's "
                             "AWS_* credentials)")
        source = sources[name]
        values |= _from_host(name) if source == HOST else _from_file(name, source)
    return values
