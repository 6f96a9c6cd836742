"""What a built-in transfer step is told (the manifest prepare_transfers writes) and how it fails."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagekit_core import contract
from imagekit_core.errors import EXIT_ENVIRONMENT, EnvironmentMissing
from imagekit_core.spec.sources import SINK_STEP_PREFIX, SOURCE_STEP_PREFIX

SECRET_QUERY_RE = re.compile(r"\?.*\Z", re.S)
USERINFO_RE = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.I)


def redact(url: str) -> str:
    """A URL as it may appear in an error, a log or the journal: no user:password@, no query (signatures)."""
    return SECRET_QUERY_RE.sub("?…", USERINFO_RE.sub(r"\1…@", url))


class TransferFailed(EnvironmentMissing):
    """A source or sink cannot be reached: missing object or bucket, access denied, endpoint down. Exit 3."""

    exit_code = EXIT_ENVIRONMENT

    def __init__(self, kind: str, name: str, url: str, problem: str) -> None:
        super().__init__(f"{kind} {name} ({redact(url)}): {problem}")


@dataclass(frozen=True)
class Entry:
    """One object (file) of a source: its path below the source ("" for a single object) and what pins it."""

    key: str
    size: int
    etag: str = ""     # s3: the ETag; http: the ETag or Last-Modified; file: size and mtime
    version: str = ""  # s3: the VersionId, when the bucket keeps versions


@dataclass(frozen=True)
class Manifest:
    kind: str    # "source" or "sink"
    name: str    # the data item
    url: str     # rendered for this shard and run (may hold credentials: never logged)
    scheme: str
    prefix: bool  # a directory: an s3 prefix or a file:// directory
    entries: tuple[Entry, ...] = field(default=())  # sources only

    @property
    def step(self) -> str:
        return (SOURCE_STEP_PREFIX if self.kind == "source" else SINK_STEP_PREFIX) + self.name

    @property
    def size(self) -> int:
        return sum(entry.size for entry in self.entries)

    def identity(self) -> str:
        """What a source's key holds: its URL and every object's ETag (or version), size and path."""
        material = json.dumps([self.url, [asdict(e) for e in sorted(self.entries, key=lambda e: e.key)]])
        return hashlib.sha256(material.encode()).hexdigest()

    def failed(self, problem: str) -> TransferFailed:
        return TransferFailed(self.kind, self.name, self.url, problem)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(**{**data, "entries": tuple(Entry(**e) for e in data.get("entries", ()))})


def manifest_path(run_dir: Path, step: str) -> Path:
    return run_dir / contract.TRANSFERS_DIR / f"{step}.json"


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    path = manifest_path(run_dir, manifest.step)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(contract.TEMPORARY_PREFIX + path.name)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it may name credentials
    with os.fdopen(descriptor, "w") as out:
        json.dump(manifest.to_json(), out)
    os.replace(temporary, path)


def read_manifest(run_dir: Path, step: str) -> Manifest:
    return Manifest.from_json(json.loads(manifest_path(run_dir, step).read_text()))


def safe_target(root: Path, relative: str) -> Path:
    """Where an object of a prefix source goes below root; a key that would lead outside it is refused."""
    target = (root / relative).resolve() if relative else root
    if relative.startswith("/") or not target.is_relative_to(root.resolve()):
        raise ValueError(f"object {relative!r} would be written outside {root}")
    return target
