"""Where each step's own Python requirements come from.

Two providers, one interface: `paths_for(step)` gives the directories to put
first on the step's PATH and PYTHONPATH.
- `LocalVenvs` (`run --local`): one virtual environment per distinct
  requirements file, cached by its hash, installed through the user's own pip
  configuration. Steps with conflicting requirements get different venvs.
- `PrebuiltDeps` (inside an image): `<deps_root>/<step>` made by the build,
  installed with `pip install --target`.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from imagekit_core import proc
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, SpecError
from imagekit_core.spec import StepSpec

log = logging.getLogger("imagekit.runtime")


@dataclass(frozen=True)
class StepPaths:
    bin_dirs: tuple[Path, ...] = ()
    python_paths: tuple[Path, ...] = ()


class EnvironmentProvider(Protocol):
    def paths_for(self, step: StepSpec) -> StepPaths: ...


@dataclass(frozen=True)
class PrebuiltDeps:
    deps_root: Path

    def paths_for(self, step: StepSpec) -> StepPaths:
        target = self.deps_root / step.name
        if not target.is_dir():
            return StepPaths()
        bin_dir = target / "bin"
        return StepPaths(bin_dirs=(bin_dir,) if bin_dir.is_dir() else (), python_paths=(target,))


def default_cache_dir() -> Path:
    return cache_root() / "venvs"


@dataclass(frozen=True)
class LocalVenvs:
    cache_dir: Path

    def venv_key(self, step: StepSpec) -> str:
        material = f"{sys.version}|{platform.machine()}|{step.requirements_text}"
        return hashlib.sha256(material.encode()).hexdigest()[:20]

    def paths_for(self, step: StepSpec) -> StepPaths:
        # A step without requirements gets an empty venv: its `python3` is then the interpreter's own,
        # without the packages of whatever environment imagekit itself was installed in (as in the image).
        venv = self.ensure(step)
        return StepPaths(bin_dirs=(venv / "bin",))

    def ensure(self, step: StepSpec) -> Path:
        """The ready virtual environment of a step (empty for a step without requirements)."""
        requirements = step.requirements
        venv = self.cache_dir / self.venv_key(step)
        if (venv / ".imagekit-ready").exists():
            return venv
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others reuse its result
            if (venv / ".imagekit-ready").exists():
                return venv
            building = venv.with_name(venv.name + ".building")
            shutil.rmtree(building, ignore_errors=True)
            log.info("step %s: creating a virtual environment for %s", step.name, requirements or "no requirements")
            proc.run([sys.executable, "-m", "venv", "--without-pip", building])
            if requirements is not None:
                self.install(step.name, requirements, building)
            shutil.rmtree(venv, ignore_errors=True)
            os.rename(building, venv)
            # The venv's python is a symlink to the base interpreter; `home` in pyvenv.cfg keeps working
            # after the rename. Scripts' shebangs are not used: steps run `python3` from bin/.
            (venv / ".imagekit-ready").write_text(step.requirements_text)
        return venv

    @staticmethod
    def install(step: str, requirements: Path, venv: Path) -> None:
        try:
            proc.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
                      "--quiet", "--disable-pip-version-check", "-r", requirements])
        except CommandFailed as exc:
            shutil.rmtree(venv, ignore_errors=True)
            detail = next((line for line in reversed(exc.output.splitlines()) if "ERROR" in line), exc.output.strip()[-300:])
            raise SpecError(requirements, "requirements", f"step {step}: pip could not install them: {detail.strip()}",
                            "fix the requirement or your pip configuration") from None
