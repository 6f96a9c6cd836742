"""Each step's requirements, resolved on the host and installed into its own directory.

Resolution goes through the user's own pip (index, certificates, credentials from
pip.conf or PIP_* variables) for the base image's Python and platform; only
binary wheels are accepted, so the image build itself never needs a network, a
compiler or the user's pip configuration. The installed tree is what the image
gets at /opt/imagekit/deps/<step>/; the runtime puts it first on that step's
PYTHONPATH. Trees are cached by (requirements, target), like a lock file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagekit_runtime import proc
from imagekit_runtime.cachedir import cache_root
from imagekit_runtime.errors import CommandFailed, EnvironmentMissing, SpecError
from imagekit_runtime.spec import StepSpec

log = logging.getLogger("imagekit.build")

# Bump when the layout of an installed tree changes, so old caches are not reused.
TREE_FORMAT = "1"

# Run with the base image's python3: what wheels it can load, and whether the runtime's
# own requirements (supervisor, pyyaml, prometheus_client) are already there.
PROBE_SCRIPT = r"""
import json, os, platform, sys, shutil
libc = ""
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    pass
def has(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "machine": platform.machine(),
    "libc": libc,
    "supervisor": has("supervisor.supervisord"),
    "yaml": has("yaml"),
    "prometheus": has("prometheus_client"),
    "pip": has("pip"),
}))
"""


@dataclass(frozen=True)
class PythonTarget:
    """The interpreter and platform wheels are chosen for."""

    version: str  # "3.11"
    implementation: str = "cpython"
    machine: str = "x86_64"
    glibc: str = "2.36"
    has_supervisor: bool = True
    has_yaml: bool = True
    has_pip: bool = False
    has_prometheus: bool = False  # False in probes cached before it was asked: fetching the wheel is harmless

    @classmethod
    def from_probe(cls, output: str) -> PythonTarget:
        line = [text for text in output.strip().splitlines() if text.startswith("{")][-1]
        data = json.loads(line)
        libc = data.get("libc", "")
        if not libc.startswith("glibc "):
            raise EnvironmentMissing(
                f"the base image's libc is {libc or 'unknown'!r}: imagekit installs manylinux wheels, which need glibc"
            )
        return cls(
            version=data["version"], implementation=data["implementation"], machine=data["machine"],
            glibc=libc.split()[1], has_supervisor=data["supervisor"], has_yaml=data["yaml"], has_pip=data["pip"],
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

    def key(self) -> str:
        """What decides which wheels fit (not what the image happens to have installed)."""
        return f"{self.implementation}-{self.version}-{self.machine}-glibc{self.glibc}"


def requirements_key(text: str, target: PythonTarget) -> str:
    return hashlib.sha256(f"{TREE_FORMAT}\0{target.key()}\0{text}".encode()).hexdigest()[:24]


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip"]


_NOT_FOUND = re.compile(r"No matching distribution found for ([^\s]+)")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement ([^\s]+)")
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_NETWORK = ("NewConnectionError", "Max retries exceeded", "Could not fetch URL", "ConnectTimeout",
            "Temporary failure in name resolution", "Network is unreachable")


def _resolution_error(step: StepSpec, target: PythonTarget, output: str) -> Exception:
    where = step.requirements or step.source_file
    platform_text = f"CPython {target.version} {target.machine} (glibc {target.glibc}), binary wheels only"
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
                "check the name and version, and that a binary wheel exists for this Python and platform",
            )
    match = _CONFLICT.search(output)
    if match:
        return SpecError(where, match.group(1), f"step {step.name!r}: requirements conflict with each other",
                         "loosen or align the pinned versions")
    last = output.strip().splitlines()[-1] if output.strip() else "pip failed"
    return SpecError(where, "requirements", f"step {step.name!r}: pip could not resolve its requirements: {last}",
                     "run the pip download command with --verbose to see why")


def _rewrite_shebangs(tree: Path) -> None:
    """pip writes the host interpreter's path into console scripts; the image has its own python3."""
    bin_dir = tree / "bin"
    if not bin_dir.is_dir():
        return
    for script in sorted(bin_dir.iterdir()):
        if not script.is_file() or script.is_symlink():
            continue
        content = script.read_bytes()
        if content.startswith(b"#!") and b"python" in content.split(b"\n", 1)[0]:
            rest = content.split(b"\n", 1)[1] if b"\n" in content else b""
            script.write_bytes(b"#!/usr/bin/env python3\n" + rest)


def _strip_caches(tree: Path) -> None:
    """Some wheels ship __pycache__; bytecode depends on who compiled it and when, so none enters a layer."""
    for cache_dir in sorted(tree.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache_dir, ignore_errors=True)


def install_step_requirements(step: StepSpec, target: PythonTarget, *, refresh: bool = False) -> Path:
    """Resolve and install a step's requirements for `target`; return the installed tree (cached)."""
    assert step.requirements is not None
    text = step.requirements_text
    key = requirements_key(text, target)
    root = cache_root() / "deps"
    tree = root / key
    if tree.is_dir() and not refresh:
        log.info("deps %s: cached (%s)", step.name, key)
        return tree
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{key}.", dir=root) as work:
        wheels = Path(work) / "wheels"
        installed = Path(work) / "tree"
        log.info("deps %s: resolving %s for CPython %s", step.name, step.requirements.name, target.version)
        # Through the user's own pip configuration (no --isolated): their index and credentials.
        # Run in the requirements file's directory so relative `-r`/`-c` includes resolve.
        try:
            proc.run([*_pip(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                      *target.pip_args(), "--dest", wheels, "-r", step.requirements],
                     cwd=step.requirements.parent)
        except CommandFailed as exc:
            raise _resolution_error(step, target, exc.output) from None
        # Offline from the wheels just fetched, ignoring every pip configuration: nothing of the
        # user's setup can reach the installed tree.
        try:
            proc.run([*_pip(), "install", "--isolated", "--disable-pip-version-check", "--no-input",
                      "--progress-bar", "off", "--no-index", "--find-links", wheels, *target.pip_args(),
                      "--target", installed, "--no-compile", "--no-warn-script-location", "--no-cache-dir",
                      "-r", step.requirements],
                     cwd=step.requirements.parent, env=_clean_pip_env())
        except CommandFailed as exc:
            raise _resolution_error(step, target, exc.output) from None
        _rewrite_shebangs(installed)
        _strip_caches(installed)
        if refresh and tree.exists():
            shutil.rmtree(tree, ignore_errors=True)
        try:
            os.replace(installed, tree)
        except OSError:
            if not tree.is_dir():  # else another build installed the same requirements meanwhile
                raise
    return tree


def _clean_pip_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}


def download_runtime_wheels(target: PythonTarget, destination: Path) -> list[Path]:
    """Wheels of what the runtime needs and the base image lacks (supervisor, pyyaml, prometheus_client),
    for Containerfile.base."""
    wanted = []
    if not target.has_supervisor:
        wanted.append("supervisor")
    if not target.has_yaml:
        wanted.append("pyyaml")
    if not target.has_prometheus:
        wanted.append("prometheus_client")  # --metrics, which rendered pods pass
    destination.mkdir(parents=True, exist_ok=True)
    if not wanted:
        return []
    cached = cache_root() / "runtime-wheels" / requirements_key(" ".join(wanted), target)
    if not cached.is_dir():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent) as work:
            try:
                proc.run([*_pip(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                          *target.pip_args(), "--dest", work, *wanted])
            except CommandFailed as exc:
                raise EnvironmentMissing(f"could not fetch wheels of {', '.join(wanted)} for the base image "
                                         f"(CPython {target.version}): {exc}") from None
            shutil.copytree(work, cached)
    copied = []
    for wheel in sorted(cached.glob("*.whl")):
        shutil.copy2(wheel, destination / wheel.name)
        copied.append(destination / wheel.name)
    return copied
