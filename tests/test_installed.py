"""imagekit as its users get it: the wheel and the sdist, each installed into a fresh virtualenv outside this
checkout, driven by a normal user (in the docker group) through the whole path with default paths only:
version, init, validate, graph, lock, build and push (Docker; and buildah for the wheel), run, deploy render,
pod up/status/logs/down."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from fixtures_engine import REGISTRY

BASE = "imagekit/debian-python:bookworm"

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def artifacts() -> Iterator[dict[str, Path]]:
    out = Path(tempfile.mkdtemp(prefix="imagekit-dist-", dir="/tmp"))  # pytest's own tmp is root's alone
    subprocess.run(["python3", "-m", "build", "--wheel", "--sdist", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    os.chmod(out, 0o755)
    for item in out.iterdir():
        os.chmod(item, 0o644)
    yield {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}
    shutil.rmtree(out, ignore_errors=True)


class AsUser:
    def __init__(self, user: pwd.struct_passwd, home: Path) -> None:
        self.user = user
        self.home = home

    def __call__(self, *argv: str, expect: int = 0, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {"HOME": self.home.as_posix(), "PATH": f"{self.home}/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        # runuser sets HOME to the user's own: `env` after it gives the user this test's clean environment.
        result = subprocess.run(["runuser", "-u", self.user.pw_name, "--", "env", "-i",
                                 *(f"{key}={value}" for key, value in env.items()), *argv],
                                cwd=self.home, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == expect, f"{argv}: exit {result.returncode}\n{result.stderr[-3000:]}"
        assert "Traceback" not in result.stderr
        return result


@pytest.fixture
def user_home(tester: pwd.struct_passwd) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="imagekit-user-", dir="/tmp"))  # outside the checkout
    os.chown(home, tester.pw_uid, tester.pw_gid)
    yield home
    subprocess.run(["runuser", "-u", tester.pw_name, "--", "rm", "-rf", str(home)], check=False)
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_installed_package_runs_the_users_path_as_a_normal_user(
        kind: str, artifacts: dict[str, Path], tester: pwd.struct_passwd, user_home: Path, engine_ready: None) -> None:
    user = AsUser(tester, user_home)
    user("python3", "-m", "venv", f"{user_home}/venv")
    user(f"{user_home}/venv/bin/pip", "install", "--quiet", "--disable-pip-version-check", str(artifacts[kind]))
    assert user("imagekit", "--version").stdout.startswith("imagekit ")
    user("imagekit", "init", "mine")
    user("imagekit", "validate", "mine")
    assert "generate" in user("imagekit", "graph", "mine").stdout
    user("imagekit", "lock", "mine", "--base", BASE)

    # run with default paths only: per-user shm and state directories, nothing under /var/lib.
    ran = user("imagekit", "run", "mine")
    assert (user_home / ".local/state/imagekit/pv/results/0").is_dir(), ran.stdout
    assert Path(f"/dev/shm/imagekit-{tester.pw_uid}").is_dir()

    repository = f"{REGISTRY}/imagekit-test/installed-{kind}"
    built = user("imagekit", "build", "mine", "--base", BASE, "--tag", f"{repository}:1", "--push")
    [reference] = built.stdout.splitlines()
    assert reference.startswith(f"{repository}:1@sha256:")
    user("imagekit", "deploy", "render", "mine", "--image", reference, "--require-digest", "-d", "rendered")
    user("imagekit", "pod", "up", "rendered", "--require-digest")
    try:
        status = user("imagekit", "pod", "status", "--wait", "--timeout", "180")
        assert "Complete" in status.stdout
        assert "summarize" in user("imagekit", "pod", "logs", "mine-0").stdout
    finally:
        user("imagekit", "pod", "down", "--delete-data")

    if kind == "wheel":  # buildah, rootless: the user makes the base in its own storage
        user("imagekit", "base", "--backend", "buildah", timeout=900)
        rebuilt = user("imagekit", "build", "mine", "--backend", "buildah", "--base", BASE,
                       "--tag", f"{repository}:2", "--push")
        assert rebuilt.stdout.strip().startswith(f"{repository}:2@sha256:")
