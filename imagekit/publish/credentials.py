"""Registry credentials from the standard Docker config.json, as every engine reads them.

$DOCKER_CONFIG/config.json, else ~/.docker/config.json: `auths` entries
(base64 user:password), `credHelpers` per registry, or a default `credsStore`.
Credentials are only ever held in memory, never written anywhere.
"""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from imagekit_core import proc
from imagekit_core.errors import ImagekitError


def docker_config_file() -> Path:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(directory) / "config.json"


def authfile() -> Path | None:
    """The config.json to hand to tools that take one (buildah --authfile), if it exists."""
    path = docker_config_file()
    return path if path.is_file() else None


def _matches(key: str, host: str) -> bool:
    key = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return key == host or (host == "docker.io" and key in {"index.docker.io", "registry-1.docker.io"})


def credentials_for(host: str) -> tuple[str, str] | None:
    path = docker_config_file()
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    helper = next((name for key, name in (config.get("credHelpers") or {}).items() if _matches(key, host)), None)
    for key, entry in (config.get("auths") or {}).items():
        if _matches(key, host) and isinstance(entry, dict) and entry.get("auth"):
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            return user, password
    helper = helper or config.get("credsStore")
    if helper:
        try:
            result = proc.run([f"docker-credential-{helper}", "get"], input=host.encode(), timeout=30)
            data = json.loads(result.stdout or b"{}")
            return data.get("Username", ""), data.get("Secret", "")
        except (ImagekitError, ValueError):
            return None
    return None
