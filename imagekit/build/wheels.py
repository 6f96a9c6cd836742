"""Wheels for the image's Python and platform, fetched on the host and installed into a tree.

Downloads go through the user's own pip (index, certificates, credentials from
pip.conf or PIP_* variables); only binary wheels are accepted, so the image build
itself never needs a network, a compiler or the user's pip configuration. A step's
lock (lock.py) says which wheels; deps.py makes its tree from them.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit_core import proc
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, EnvironmentMissing, SpecError
from imagekit_core.platforms import Platform, platform_of_machine
from imagekit_core.spec import StepSpec

log = logging.getLogger("imagekit.build")

# Bump when the layout of an installed tree changes, so old caches are not reused.
TREE_FORMAT = "3"


@dataclass(frozen=True)
class PythonTarget:
    """The interpreter and platform wheels are chosen for."""

    version: str  # "3.11"
    implementation: str = "cpython"
    machine: str = "x86_64"
    glibc: str = "2.36"
    has_supervisor: bool = True
    has_yaml: bool = True
    has_prometheus: bool = False  # False in probes cached before it was asked: fetching the wheel is harmless

    @classmethod
    def from_probe(cls, data: dict[str, Any]) -> PythonTarget:
        libc = data.get("libc", "")
        if not libc.startswith("glibc "):
            raise EnvironmentMissing(
                f"the base image's libc is {libc or 'unknown'!r}: imagekit installs manylinux wheels, which need glibc"
            )
        return cls(
            version=data["version"], implementation=data["implementation"], machine=data["machine"],
            glibc=libc.split()[1], has_supervisor=data["supervisor"], has_yaml=data["yaml"],
            has_prometheus=data.get("prometheus", False),
        )

    @property
    def abi(self) -> str:
        return "cp" + self.version.replace(".", "")

    @property
    def platforms(self) -> list[str]:
        """manylinux tags this glibc loads, newest first (pip does not expand them itself)."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        # Below 2.17 every wheel also carries a legacy alias (manylinux2010, manylinux1).
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 16, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        tags += [f"{name}_{self.machine}" for glibc_minor, name in legacy.items() if major == 2 and minor >= glibc_minor]
        return tags

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--python-version", self.version, "--implementation", "cp", "--abi", self.abi]
        for tag in self.platforms:
            args += ["--platform", tag]
        return args

    @property
    def platform(self) -> Platform:
        return platform_of_machine(self.machine)

    def key(self) -> str:
        """What decides which wheels fit (not what the image happens to have installed)."""
        return f"{self.implementation}-{self.version}-{self.machine}-glibc{self.glibc}"

    @classmethod
    def from_key(cls, key: str) -> PythonTarget | None:
        """The target a key() names (None: not a key)."""
        parts = key.split("-")
        if len(parts) != 4 or not parts[3].startswith("glibc"):
            return None
        return cls(implementation=parts[0], version=parts[1], machine=parts[2], glibc=parts[3].removeprefix("glibc"))


def lock_file_name(platform: Platform | None) -> str:
    """A step's lock file for a platform: requirements.lock for linux/amd64 (the one lock there was before
    platforms), requirements.<os>-<architecture>.lock for another (requirements.linux-arm64.lock)."""
    if platform is None or platform.architecture == "amd64":
        return "requirements.lock"
    return f"requirements.{platform.os}-{platform.architecture}.lock"


def requirements_key(text: str, target: PythonTarget) -> str:
    return hashlib.sha256(f"{TREE_FORMAT}\0{target.key()}\0{text}".encode()).hexdigest()[:24]


def pip_command() -> list[str]:
    return [sys.executable, "-m", "pip"]


_NOT_FOUND = re.compile(r"No matching distribution found for ([^\s]+)")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_NETWORK = ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "ConnectTimeout",
            "Temporary failure in name resolution", "Network is unreachable")


def resolution_error(step: StepSpec, target: PythonTarget, output: str) -> Exception:
    where = step.requirements or step.source_file
    platform_text = f"{target.platform} (CPython {target.version} {target.machine}, glibc {target.glibc}), binary wheels only"
    # An index that can't be reached is worth saying, but the requirement is still what failed.
    unreachable = " (some package indexes were unreachable: check your pip configuration)" if any(
        marker in output for marker in _NETWORK) else ""
    for pattern in (_NOT_FOUND, _NO_VERSION):
        match = pattern.search(output)
        if match:
            requirement = match.group(1)
            return SpecError(
                where, requirement,
                f"step {step.name!r}: requirement {requirement!r} can't be resolved for {platform_text}{unreachable}",
                f"check the name and version, and that a binary wheel exists for this Python on {target.platform}, "
                "or build for the platforms it has wheels for",
            )
    if "DO NOT MATCH THE HASHES" in output:
        return SpecError(step.directory / lock_file_name(target.platform), "--hash",
                         f"step {step.name!r}: a wheel does not match the hash its lock names",
                         "check the index you fetch from, or run `imagekit lock` to lock again")
    match = _CONFLICT.search(output)
    if match:
        return SpecError(where, match.group(1), f"step {step.name!r}: requirements conflict with each other",
                         "loosen or align the pinned versions")
    last = output.strip().splitlines()[-1] if output.strip() else "pip failed"
    return SpecError(where, "requirements", f"step {step.name!r}: pip could not resolve its requirements: {last}",
                     "run the pip download command with --verbose to see why")


def strip_caches(tree: Path) -> None:
    """Some wheels ship __pycache__; bytecode depends on who compiled it and when, so none enters a layer."""
    for cache_dir in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache_dir, ignore_errors=True)


def download_locked(lock: Path, target: PythonTarget, wheels: Path) -> None:
    """The wheels a lock names, for target, through the user's own pip configuration, hashes checked."""
    proc.run([*pip_command(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
              "--no-deps", "--require-hashes", *target.pip_args(), "--dest", wheels, "-r", lock], cwd=lock.parent)


def download_runtime_wheels(target: PythonTarget) -> list[Path]:
    """Wheels of what the runtime needs and the base image lacks (supervisor, pyyaml, prometheus_client), cached."""
    wanted = []
    if not target.has_supervisor:
        wanted.append("supervisor")
    if not target.has_yaml:
        wanted.append("pyyaml")
    if not target.has_prometheus:
        wanted.append("prometheus_client")  # --metrics, which rendered pods pass
    if not wanted:
        return []
    cached = cache_root() / "runtime-wheels" / requirements_key(" ".join(wanted), target)
    if not cached.is_dir():
        cached.parent.mkdir(parents=True, exist_ok=True)
        work = tempfile.mkdtemp(dir=cached.parent)
        try:
            proc.run([*pip_command(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                      *target.pip_args(), "--dest", work, *wanted])
            os.replace(work, cached)
        except CommandFailed as exc:
            raise EnvironmentMissing(f"could not fetch wheels of {', '.join(wanted)} for the base image "
                                     f"(CPython {target.version}): {exc}") from None
        except OSError:
            if not cached.is_dir():  # else another build fetched them meanwhile
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return sorted(cached.glob("*.whl"))
