"""Another platform's base, made here: `imagekit base --platform linux/arm64` (mmdebstrap with qemu-user-static,
which scripts/bootstrap.sh registers with binfmt_misc), and its Python runs here under emulation."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import ARM64_BASE

pytestmark = [pytest.mark.docker, pytest.mark.slow]

def test_an_arm64_base_is_made_here_and_its_python_runs_under_emulation(arm64_base: str) -> None:
    assert Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists(), "scripts/bootstrap.sh registers qemu-aarch64"
    architecture = subprocess.run(["docker", "image", "inspect", "--format", "{{.Architecture}}/{{.Os}}", ARM64_BASE],
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert architecture == "arm64/linux"
    ran = subprocess.run(["docker", "run", "--rm", "--platform", "linux/arm64", "--network", "none", ARM64_BASE,
                          "python3", "-c", "import platform, yaml, supervisor; print(platform.machine())"],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "aarch64"
    again = imagekit("base", "--platform", "linux/arm64", "--tag", ARM64_BASE)
    assert again.returncode == 0 and again.stderr.startswith("kept")  # the same recipe: kept, not made again
    assert "bookworm arm64 minbase" in again.stderr


def test_an_unknown_platform_is_one_line_and_exit_2() -> None:
    result = imagekit("base", "--platform", "linux/riscv64", "--tag", "x/y:z")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--platform" in result.stderr and "fix:" in result.stderr
