"""The runtime base, assembled like every other layer: no engine runs anything to make it.

Two layers on the pipeline's base image, both imagekit's own deterministic tarballs:

    runtime-setup   supervisor and pyyaml (the wheels unpacked into site-packages) when
                    the base lacks them, and supervisord/supervisorctl launchers; the user
                    `imagekit` (uid 10001) in /etc/passwd and /etc/group; the directories
                    the runtime uses (/opt/imagekit/{deps,pipeline}, /var/lib/imagekit/…)
    runtime         imagekit_runtime at /opt/imagekit/runtime/, and its SBOM

and the config changes Containerfile.base makes (environment, user, entrypoint). What
the base image already holds (its /etc/passwd, its site-packages path, the owners and
modes of the directories the layers pass through) comes from the probe, which reads
it once per base image. Containerfile.base + base-setup.sh are the by-hand equivalent:
the same file tree, built by any engine (a test compares the two).
"""
from __future__ import annotations

import copy
import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import imagekit_core
import imagekit_runtime
from imagekit_core import contract
from imagekit_core.spec.stepfiles import Kind

from .assembly import BaseImage, NewLayer
from .plan import SBOM_ROOT
from .sbom import RUNTIME_SBOM, cached_sbom, cyclonedx_json, wheel_packages
from .tarball import Entry, Mapping, write_layer

# The runtime contract as the image carries it (contract.py; Containerfile.base spells the same values).
RUNTIME_UID = contract.RUNTIME_UID
USER_NAME = contract.RUNTIME_USER
RUNTIME_ROOT = PurePosixPath(contract.IMAGE_RUNTIME_DIR)
PROGRAMS = ("supervisord", "supervisorctl")
ENVIRONMENT = (
    ("PYTHONPATH", contract.IMAGE_RUNTIME_DIR),
    (contract.DEPS_ROOT, contract.IMAGE_DEPS_ROOT),
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONUNBUFFERED", "1"),
)
ENTRYPOINT = ["python3", "-m", "imagekit_runtime", "run", contract.IMAGE_PIPELINE_FILE]
ROOT_DIRECTORIES = (PurePosixPath(contract.IMAGE_DEPS_ROOT), PurePosixPath(contract.IMAGE_PIPELINE_DIR),
                    PurePosixPath(contract.STATE_ROOT))
USER_DIRECTORIES = (PurePosixPath(contract.RUNTIME_HOME), PurePosixPath(contract.DEFAULT_SSD),
                    PurePosixPath(contract.DEFAULT_PV))


@dataclass(frozen=True)
class BaseFacts:
    """What the base image holds that the runtime layers build on (from the probe)."""

    purelib: str  # sysconfig's purelib: where base-setup.sh unpacks wheels
    programs: tuple[str, ...]  # those of PROGRAMS already on the base's PATH
    files: dict[str, str] = field(default_factory=dict)  # /etc/passwd, /etc/group as they are
    stats: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # path: (mode, uid, gid)

    @classmethod
    def from_probe(cls, data: dict[str, Any]) -> BaseFacts:
        return cls(purelib=data["purelib"], programs=tuple(data["programs"]), files=dict(data["files"]),
                   stats={path: (int(mode), int(uid), int(gid)) for path, (mode, uid, gid) in data["stats"].items()})


@dataclass(frozen=True)
class RuntimeBase:
    base: BaseImage  # the pipeline's base image, its config as the runtime needs it
    layers: tuple[NewLayer, ...]
    sbom: Path  # the directory holding runtime.cdx.json (in the last layer)

    @property
    def key(self) -> str:
        """Same base, same runtime layers: the same runtime base."""
        material = "\0".join([self.base.id, *(layer.digest for layer in self.layers)])
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def _directory(path: PurePosixPath, facts: BaseFacts, owner: int = 0) -> Entry:
    mode, uid, gid = facts.stats.get(str(path), (0o755, owner, owner))
    return Entry(path, Kind.directory, mode=mode, uid=uid, gid=gid)


def _parents(paths: list[PurePosixPath], facts: BaseFacts) -> list[Entry]:
    """Every parent directory of paths, as the base has it (or 0755 root when it's new)."""
    parents = {parent for path in paths for parent in path.parents if str(parent) != "/"}
    return [_directory(parent, facts) for parent in sorted(parents)]


def _wheel_entries(wheels: list[Path], purelib: PurePosixPath) -> list[Entry]:
    """Each wheel unpacked into purelib as a zip is (base-setup.sh does the same): 0644 files, 0755 dirs."""
    entries: dict[PurePosixPath, Entry] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = purelib / info.filename.rstrip("/")
                for parent in path.parents:
                    if parent == purelib or purelib in parent.parents:
                        entries.setdefault(parent, Entry(parent, Kind.directory, mode=0o755))
                if info.is_dir():
                    entries.setdefault(path, Entry(path, Kind.directory, mode=0o755))
                else:
                    entries[path] = Entry(path, Kind.file, mode=0o644, content=archive.read(info))
    return list(entries.values())


def _launcher(program: str) -> bytes:
    return f'#!/bin/sh\nexec python3 -m supervisor.{program} "$@"\n'.encode()


def _user_files(facts: BaseFacts) -> list[Entry]:
    """/etc/passwd (and /etc/group, when gid 10001 is free) with the runtime's user appended."""
    entries = []
    passwd = facts.files.get("/etc/passwd", "")
    group = facts.files.get("/etc/group", "")
    if not any(line.startswith(f"{USER_NAME}:") for line in passwd.splitlines()):
        if not any(line.split(":")[2:3] == [str(RUNTIME_UID)] for line in group.splitlines()):
            entries.append(_file("/etc/group", group + f"{USER_NAME}:x:{RUNTIME_UID}:\n", facts))
        line = f"{USER_NAME}:x:{RUNTIME_UID}:{RUNTIME_UID}:imagekit runtime:/home/imagekit:/usr/sbin/nologin\n"
        entries.append(_file("/etc/passwd", passwd + line, facts))
    return entries


def _file(path: str, text: str, facts: BaseFacts) -> Entry:
    mode, uid, gid = facts.stats.get(path, (0o644, 0, 0))
    return Entry(PurePosixPath(path), Kind.file, mode=mode, uid=uid, gid=gid, content=text.encode())


def setup_entries(facts: BaseFacts, wheels: list[Path]) -> list[Entry]:
    """The runtime-setup layer: what base-setup.sh changes in the base image."""
    entries = _wheel_entries(wheels, PurePosixPath(facts.purelib)) if wheels else []
    bin_dir = PurePosixPath("/usr/local/bin")
    entries += [Entry(bin_dir / program, Kind.file, mode=0o755, content=_launcher(program))
                for program in PROGRAMS if program not in facts.programs]
    entries += _user_files(facts)
    entries += [Entry(path, Kind.directory, mode=0o755) for path in ROOT_DIRECTORIES]
    entries += [Entry(path, Kind.directory, mode=0o755, uid=RUNTIME_UID, gid=RUNTIME_UID) for path in USER_DIRECTORIES]
    ours = {entry.path for entry in entries}
    return [entry for entry in _parents(sorted(ours), facts) if entry.path not in ours] + entries


def runtime_config(base: BaseImage) -> BaseImage:
    """The base's config with what Containerfile.base sets: ENV, USER, ENTRYPOINT (no CMD)."""
    config = copy.deepcopy(base.config)
    runtime = config.setdefault("config", {})
    env = list(runtime.get("Env") or [])
    for name, value in ENVIRONMENT:
        entry = f"{name}={value}"
        index = next((i for i, item in enumerate(env) if item.split("=", 1)[0] == name), None)
        if index is None:
            env.append(entry)
        else:
            env[index] = entry
    runtime["Env"] = env
    runtime["User"] = f"{RUNTIME_UID}:{RUNTIME_UID}"
    runtime["Entrypoint"] = list(ENTRYPOINT)
    runtime.pop("Cmd", None)
    return BaseImage(id=base.id, config=config, layer_sizes=base.layer_sizes)


def runtime_sbom(wheels: list[Path]) -> Path:
    """The runtime base's SBOM: imagekit_runtime and imagekit_core, and the wheels imagekit unpacked into the
    base."""
    description = (f"imagekit's runtime base: {RUNTIME_ROOT}/imagekit_runtime, {RUNTIME_ROOT}/imagekit_core and "
                   "the packages imagekit added to the base image")

    def make() -> str:
        return cyclonedx_json("imagekit-runtime", imagekit_runtime.__version__, wheel_packages(wheels), description)

    # Wheels sit in the cache under their content's key, so their paths name them; the description is in the
    # document, so in the key too (a cached SBOM with an older wording made the same build differ by cache).
    source = "\0".join([imagekit_runtime.__version__, description, *(str(wheel) for wheel in wheels)])
    return cached_sbom(RUNTIME_SBOM, source, make)


def runtime_package() -> Path:
    return Path(imagekit_runtime.__file__).resolve().parent


def core_package() -> Path:
    return Path(imagekit_core.__file__).resolve().parent


def assemble_runtime_base(base: BaseImage, facts: BaseFacts, wheels: list[Path], directory: Path,
                          sbom: Path) -> RuntimeBase:
    """The runtime base's two layers, written to directory, on base. sbom: a directory whose files
    go to /opt/imagekit/sbom/ in the runtime layer."""
    setup = write_layer((), directory / "runtime-setup.tar", setup_entries(facts, wheels))
    mappings = [Mapping(runtime_package(), RUNTIME_ROOT / "imagekit_runtime"),
                Mapping(core_package(), RUNTIME_ROOT / "imagekit_core"), Mapping(sbom, SBOM_ROOT)]
    parents = _parents([mapping.target / "-" for mapping in mappings], facts)
    runtime = write_layer(mappings, directory / "runtime.tar", parents)
    layers = (
        NewLayer("runtime-setup", "imagekit: runtime base: supervisor and pyyaml if missing, user 10001", setup),
        NewLayer("runtime", f"imagekit: runtime base: imagekit_runtime and imagekit_core at {RUNTIME_ROOT}",
                 runtime),
    )
    return RuntimeBase(base=runtime_config(base), layers=layers, sbom=sbom)
