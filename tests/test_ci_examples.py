"""docs/ci: the GitHub Actions workflow and the GitLab CI file run, command for command, here.

Each file's own commands are read from it (GitHub: the `run:` of each step; GitLab: `before_script:` and
`script:`) and run in order by bash as those CIs run them (`-eo pipefail`; GitHub a fresh shell per step
with $GITHUB_ENV and $GITHUB_PATH carried over, GitLab one shell for both lists). The install line runs
too: IMAGEKIT_PACKAGE is a wheel of this checkout, installed into a virtualenv under a HOME of the
test's own. The variables are the files' own, except the registry (the local one, 127.0.0.1:5000), the
base image (the local one), the branch (the default one, so the image is pushed) and the engine (this
machine's, not GitLab's Docker-in-Docker service: its DOCKER_* variables are left out). What is not run:
the `uses:` actions (checkout, setup-python, cache, registry login, upload).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO

CI = REPO / "docs" / "ci"
REGISTRY = os.environ.get("IMAGEKIT_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("IMAGEKIT_BASE_IMAGE", "imagekit/debian-python:bookworm")


def github_commands(workflow: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    [job] = workflow["jobs"].values()
    steps = [step for step in job["steps"] if "run" in step]
    return {**workflow.get("env", {}), **job.get("env", {})}, [step["run"] for step in steps]


def gitlab_commands(pipeline: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    [job] = [value for key, value in pipeline.items() if isinstance(value, dict) and "script" in value]
    variables = {**pipeline.get("variables", {}), **job.get("variables", {})}
    return variables, ["\n".join([*job.get("before_script", []), *job["script"]])]  # one shell runs both


def _expand(value: str, variables: dict[str, str]) -> str:
    """$NAME in a CI variable, as the CI expands it from its own variables."""
    for name in sorted(variables, key=len, reverse=True):  # $CI_REGISTRY_IMAGE before $CI_REGISTRY
        value = value.replace(f"${name}", variables[name])
    return value


def test_the_ci_files_do_what_the_docs_say() -> None:
    """Both install imagekit as a tool, check the locks, build --locked (pushing from the default branch only),
    render for the digest and run `deploy validate`, in that order, and use the registry as their cache."""
    for name in ("github-actions.yml", "gitlab-ci.yml"):
        text = (CI / name).read_text()
        parsed = yaml.safe_load(text)
        commands = "\n".join((github_commands if name.startswith("github") else gitlab_commands)(parsed)[1])
        order = [commands.find(word) for word in ("python3 -m venv", "imagekit validate", "lock", "imagekit build",
                                                  "imagekit deploy render", "imagekit deploy validate")]
        assert -1 not in order and order == sorted(order), name
        assert "pip install ." not in commands and "--check" in commands and "--locked" in commands, name
        assert 'push="--push --cache-to $CACHE"' in commands and "--require-digest" in commands, name
        assert '--cache-from "$CACHE"' in commands, name  # the registry is the cache: an empty runner reuses it
    assert yaml.safe_load((CI / "github-actions.yml").read_text())["permissions"]["packages"] == "write"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    return next(out.glob("*.whl"))


@pytest.fixture
def local_engine() -> None:
    from imagekit_core.engine import connect

    client = connect(timeout=60)  # exit 3's error when there is no engine: the test fails saying so
    client.images.get(BASE_IMAGE)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("ci_file", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_ci_file_runs_as_written(tmp_path: Path, ci_file: str, local_engine: None, wheel: Path) -> None:
    parsed = yaml.safe_load((CI / ci_file).read_text())
    variables, commands = (github_commands if ci_file.startswith("github") else gitlab_commands)(parsed)
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "pipelines", work / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    github_env, github_path = tmp_path / "github_env", tmp_path / "github_path"
    github_env.touch()
    github_path.touch()
    repository = f"{REGISTRY}/imagekit-ci-{secrets.token_hex(4)}"
    home = tmp_path / "home"
    home.mkdir()
    runner = {  # what the CI gives a job on the default branch
        "HOME": str(home), "PATH": "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
        "GITHUB_ENV": str(github_env), "GITHUB_PATH": str(github_path), "GITHUB_SHA": "0" * 40,
        "GITHUB_REF_NAME": "main", "CI_COMMIT_SHA": "0" * 40, "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
        "CI_PROJECT_DIR": str(work), "CI_REGISTRY": REGISTRY, "CI_REGISTRY_USER": "ci", "CI_REGISTRY_PASSWORD": "ci",
        "CI_REGISTRY_IMAGE": repository}
    env = {**runner, **{key: _expand(str(value), runner) for key, value in variables.items()
                        if not key.startswith("DOCKER_")}}
    env |= {"IMAGEKIT_REPO": repository, "BASE_IMAGE": BASE_IMAGE, "IMAGEKIT_PACKAGE": str(wheel),
            "DEFAULT_BRANCH": "main", "CACHE": f"{repository}/wordfreq:buildcache"}
    for name in ("DOCKER_HOST", "IMAGEKIT_REGISTRY"):
        if name in os.environ:
            env[name] = os.environ[name]
    for command in commands:
        # GitHub: what a step appends to $GITHUB_ENV and $GITHUB_PATH holds for the steps after it.
        env |= dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
        env["PATH"] = os.pathsep.join([*reversed(github_path.read_text().split()), runner["PATH"]])
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    built = json.loads((work / "build.json").read_text())
    assert built["reference"].startswith(f"{repository}/wordfreq:") and "@sha256:" in built["reference"]
    statefulset = yaml.safe_load((work / "manifests" / "statefulset.yaml").read_text())
    [container] = [c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["image"] == built["reference"]]
    assert container["image"] == built["reference"]  # the pushed digest is what the manifests run
    assert built["labels"]["org.opencontainers.image.revision"] == "0" * 40
