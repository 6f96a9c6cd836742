"""docs/ci: the GitHub Actions workflow and the GitLab CI file run, command for command, here.

Each file's own commands are read from it (GitHub: the `run:` of each step; GitLab: the `script:` lines)
and run in order by bash as those CIs run them (`-eo pipefail`; GitHub a fresh shell per step with
$GITHUB_ENV carried over, GitLab one shell for the script). The variables are the files' own, except the
registry (the local one, 127.0.0.1:5000), the base image (the local one) and the engine (this machine's, not
GitLab's Docker-in-Docker service: its DOCKER_* variables are left out). What is not run: the
`uses:` actions (checkout, setup-python, upload) and the install lines (`pip install .`, registry
login): here `imagekit` on PATH is this checkout.
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
SETUP_MARKERS = ("pip install", "~/.docker")  # lines that install imagekit or log in: CI setup, not imagekit's job


def github_commands(workflow: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    [job] = workflow["jobs"].values()
    steps = [step for step in job["steps"] if "run" in step and step.get("id") != "install"]
    return {**workflow.get("env", {}), **job.get("env", {})}, [step["run"] for step in steps]


def gitlab_commands(pipeline: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    [job] = [value for key, value in pipeline.items() if isinstance(value, dict) and "script" in value]
    variables = {**pipeline.get("variables", {}), **job.get("variables", {})}
    return variables, ["\n".join(job["script"])]  # one shell runs the whole script


def test_the_ci_files_do_what_the_docs_say() -> None:
    """Both validate, build with --push, render, and run `deploy validate`, in that order; setup is apart."""
    for name, commands in (("github-actions.yml", github_commands(yaml.safe_load((CI / "github-actions.yml").read_text()))[1]),
                           ("gitlab-ci.yml", gitlab_commands(yaml.safe_load((CI / "gitlab-ci.yml").read_text()))[1])):
        text = "\n".join(commands)
        order = [text.find(word) for word in ("imagekit validate", "imagekit build", "imagekit deploy render",
                                                "imagekit deploy validate")]
        assert -1 not in order and order == sorted(order), name
        assert "--push" in text and not any(marker in text for marker in SETUP_MARKERS), name


def imagekit_on_path(directory: Path) -> str:
    """A bin directory whose `imagekit` is this checkout's CLI; PATH with it first."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "imagekit"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m imagekit.cli.main "$@"\n')
    wrapper.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def local_engine() -> None:
    from imagekit.engine import connect

    client = connect(timeout=60)  # exit 3's error when there is no engine: the test fails saying so
    client.images.get(BASE_IMAGE)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("ci_file", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_ci_file_runs_as_written(tmp_path: Path, ci_file: str, local_engine: None) -> None:
    parsed = yaml.safe_load((CI / ci_file).read_text())
    variables, commands = (github_commands if ci_file.startswith("github") else gitlab_commands)(parsed)
    work = tmp_path / "checkout"
    shutil.copytree(REPO / "pipelines", work / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    github_env = tmp_path / "github_env"
    github_env.touch()
    repository = f"{REGISTRY}/imagekit-ci-{secrets.token_hex(4)}"
    env = {**os.environ, **{key: str(value) for key, value in variables.items() if not key.startswith("DOCKER_")},
           "IMAGEKIT_REPO": repository, "BASE_IMAGE": BASE_IMAGE, "PATH": imagekit_on_path(tmp_path),
           "PYTHONPATH": os.pathsep.join(str(REPO / part) for part in ("", "runtime", "deploy")),
           "GITHUB_ENV": str(github_env), "GITHUB_SHA": "0" * 40, "CI_COMMIT_SHA": "0" * 40}
    for command in commands:
        # GitHub: what a step appends to $GITHUB_ENV is in the environment of the steps after it.
        env |= dict(line.split("=", 1) for line in github_env.read_text().splitlines() if "=" in line)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", command], cwd=work, env=env,
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    built = json.loads((work / "build.json").read_text())
    assert built["reference"].startswith(f"{repository}/wordfreq:") and "@sha256:" in built["reference"]
    statefulset = yaml.safe_load((work / "manifests" / "statefulset.yaml").read_text())
    [container] = [c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["image"] == built["reference"]]
    assert container["image"] == built["reference"]  # the pushed digest is what the manifests run
    assert built["labels"]["org.opencontainers.image.revision"] == "0" * 40
