"""A step's locked dependencies: `requirements.lock` beside the step, exact versions and sha256 hashes.

The lock is resolved on the host for the image's Python and platform (PythonTarget), from the
step's requirements and every file they include with `-r`/`-c`, and says so in its header:

    # imagekit lock of requirements.txt for cpython-3.11-x86_64-glibc2.36; commit this file.
    # input sha256:…  (requirements.txt and the files it includes)
    numpy==2.1.3 \\
        --hash=sha256:…

A lock that names the same input and target is used as it is (the install then runs with
`--require-hashes`: an image built from locks is the same on any machine); otherwise, and with
`imagekit lock`, the requirements are resolved again and the lock written. uv resolves when it is
on PATH (`uv pip compile --generate-hashes`), pip otherwise (`pip download`, then the hashes of
the wheels it fetched).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imagekit_core import proc
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, SpecError
from imagekit_core.platforms import Platform
from imagekit_core.spec import StepSpec
from imagekit_core.spec.requirements import requirement_files

from .wheels import PythonTarget, lock_file_name, pip_command, resolution_error

log = logging.getLogger("imagekit.build")

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
_HASH = re.compile(r"--hash[=\s]+sha256:([0-9a-f]{64})")
_INPUT = re.compile(r"^# input (sha256:[0-9a-f]{64})")
_TARGET = re.compile(r"^# imagekit lock of \S+ for (\S+);")


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    version: str
    hashes: tuple[str, ...]  # sha256 hex digests of the wheels it may be installed from


@dataclass(frozen=True)
class Lock:
    path: Path
    text: str

    @property
    def pins(self) -> tuple[Pin, ...]:
        return parse_pins(self.text)


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_path(step: StepSpec, platform: Platform | None = None) -> Path:
    """The step's lock for a platform: requirements.lock for linux/amd64 (the one lock there was before
    platforms), requirements.<os>-<architecture>.lock for another (requirements.linux-arm64.lock). Each is
    part of the step's package, so the step's code layer is the same on every platform."""
    return step.directory / lock_file_name(platform)


def input_digest(requirements: Path) -> str:
    """What a lock is made from: the requirements and the files they include (names relative, contents)."""
    digest = hashlib.sha256()
    for path in requirement_files(requirements.resolve()):
        name = os.path.relpath(path, requirements.resolve().parent)
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return "sha256:" + digest.hexdigest()


def parse_pins(text: str) -> tuple[Pin, ...]:
    """name==version lines with their --hash options (continued over backslashed lines)."""
    pins: list[Pin] = []
    for logical in text.replace("\\\n", " ").splitlines():
        match = _PIN.match(logical.strip())
        if match:
            pins.append(Pin(normalise_name(match.group(1)), match.group(2), tuple(_HASH.findall(logical))))
    return tuple(pins)


def format_lock(requirements: Path, target: PythonTarget, digest: str, pins: list[Pin]) -> str:
    lines = [f"# imagekit lock of {requirements.name} for {target.key()}; commit this file.",
             f"# input {digest}  ({requirements.name} and the files it includes)",
             "# `imagekit lock PIPELINE` refreshes it; builds install it with pip --require-hashes."]
    for pin in sorted(pins, key=lambda pin: pin.name):
        hashes = " \\\n".join(f"    --hash=sha256:{value}" for value in sorted(pin.hashes))
        lines.append(f"{pin.name}=={pin.version} \\\n{hashes}")
    return "\n".join(lines) + "\n"


def locked_target(steps: list[StepSpec], platform: Platform | None = None) -> PythonTarget | None:
    """The target every one of these steps' locks for platform names, when they all have one and it is the
    same (no platform: the lock of linux/amd64, as a build for the base's platform guesses)."""
    keys = set()
    for step in steps:
        path = lock_path(step, platform)
        first = path.read_text().split("\n", 1)[0] if path.is_file() else ""
        match = _TARGET.match(first)
        keys.add(match.group(1) if match else None)
    key = keys.pop() if len(keys) == 1 else None
    return PythonTarget.from_key(key) if key else None


def current_lock(step: StepSpec, target: PythonTarget) -> Lock | None:
    """The step's lock when it was made from its requirements as they are, for target; else None."""
    path = lock_path(step, target.platform)
    if step.requirements is None or not path.is_file():
        return None
    text = path.read_text()
    header = text.splitlines()[:2]
    target_match = _TARGET.match(header[0]) if header else None
    input_match = _INPUT.match(header[1]) if len(header) > 1 else None
    if target_match is None or input_match is None:
        log.warning("%s: not an imagekit lock; locking %s again", path, step.requirements.name)
        return None
    if target_match.group(1) != target.key():
        log.warning("%s: locked for %s, the image runs %s; locking again", path, target_match.group(1), target.key())
        return None
    if input_match.group(1) != input_digest(step.requirements):
        log.info("%s: %s changed since it was locked; locking again", path, step.requirements.name)
        return None
    return Lock(path, text)


def wheel_pin(wheel: Path) -> Pin:
    name, version = wheel.name.split("-")[:2]
    return Pin(normalise_name(name), version, (hashlib.sha256(wheel.read_bytes()).hexdigest(),))


def resolve_with_pip(step: StepSpec, target: PythonTarget, wheels: Path) -> list[Pin]:
    """pip resolves through the user's own configuration; the pins are the wheels it fetched."""
    assert step.requirements is not None
    try:
        proc.run([*pip_command(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                  *target.pip_args(), "--dest", wheels, "-r", step.requirements], cwd=step.requirements.parent)
    except CommandFailed as exc:
        raise resolution_error(step, target, exc.output) from None
    return [wheel_pin(wheel) for wheel in sorted(wheels.glob("*.whl"))]


def _pip_index_args() -> list[str]:
    """The user's pip index configuration (pip.conf, PIP_*), as uv options: uv does not read pip's."""
    result = proc.run([*pip_command(), "config", "list"], check=False)
    args: list[str] = []
    options = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
               "constraint": "--constraint"}
    for line in (result.stdout or b"").decode(errors="replace").splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        value = value.strip().strip("'\"")
        if name == "no-index" and value.lower() in ("1", "true", "yes", "on"):
            args.append("--no-index")
        elif name in options:
            for item in value.split():
                args += [options[name], item]
    return args


def resolve_with_uv(step: StepSpec, target: PythonTarget, uv: str) -> list[Pin]:
    assert step.requirements is not None
    platform = f"{target.machine}-manylinux_{target.glibc.replace('.', '_')}"
    try:
        result = proc.run([uv, "pip", "compile", "--quiet", "--no-header", "--generate-hashes", "--no-annotate",
                           "--only-binary", ":all:", "--index-strategy", "unsafe-best-match",
                           "--python-version", target.version,
                           "--python-platform", platform, *_pip_index_args(), step.requirements.name],
                          cwd=step.requirements.parent)
    except CommandFailed as exc:
        raise resolution_error(step, target, exc.output) from None
    return list(parse_pins((result.stdout or b"").decode()))


def resolve(step: StepSpec, target: PythonTarget, wheels: Path) -> Lock:
    """Resolve the step's requirements for target and write its lock (wheels: pip leaves its downloads there)."""
    assert step.requirements is not None
    uv = shutil.which("uv")
    how = "uv" if uv else "pip"
    log.info("deps %s: locking %s for CPython %s (%s)", step.name, step.requirements.name, target.version, how)
    pins = resolve_with_uv(step, target, uv) if uv else resolve_with_pip(step, target, wheels)
    if not pins:
        raise SpecError(step.requirements, "requirements", f"step {step.name!r}: nothing to lock",
                        "list at least one requirement, or drop `requirements:` from step.yaml")
    text = format_lock(step.requirements, target, input_digest(step.requirements), pins)
    path = lock_path(step, target.platform)
    try:
        _write(path, text)
    except OSError as exc:  # a read-only checkout: the build goes on with the lock kept in the cache
        path = cache_root() / "locks" / f"{step.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.lock"
        log.warning("%s: can't write it (%s); the lock is at %s, copy it there", lock_path(step, target.platform),
                    exc, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, text)
    return Lock(path, text)


def _write(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as temporary:
        temporary.write(text)
    os.chmod(temporary.name, 0o644)
    os.replace(temporary.name, path)
