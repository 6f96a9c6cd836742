"""The `imagekit` command as a CI pipe and a new user meet it, run as a real process: results on stdout,
everything else on stderr; `init` → validate → run → build; the reference `build` prints; shell completion."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import EXAMPLES, Locations, imagekit
from imagekit_core import contract

REGISTRY = os.environ.get("IMAGEKIT_REGISTRY", "127.0.0.1:5000")
BASE_IMAGE = os.environ.get("IMAGEKIT_BASE_IMAGE", "imagekit/debian-python:bookworm")


def test_results_go_to_stdout_so_a_pipe_sees_them(tmp_path: Path, locations: Locations) -> None:
    validated = imagekit("validate", EXAMPLES / "wordfreq")
    assert validated.returncode == 0 and "ok — 5 steps" in validated.stdout and validated.stderr == ""
    status = imagekit("status", EXAMPLES / "wordfreq", *locations.args()[:6])
    assert status.returncode == 0, status.stderr
    assert "would run" in status.stdout and "corpus" in status.stdout and status.stderr == ""
    graph = imagekit("graph", EXAMPLES / "wordfreq", "-o", "dot")
    assert graph.stdout.startswith('digraph "wordfreq"') and graph.stderr == ""


def test_shell_completion_completes_verbs() -> None:
    done = imagekit(env={"_IMAGEKIT_COMPLETE": "complete_bash", "COMP_WORDS": "imagekit gr", "COMP_CWORD": "1"})
    assert done.returncode == 0 and done.stdout.split() == ["graph"], done.stdout + done.stderr
    script = imagekit("--show-completion", "bash")
    assert "_IMAGEKIT_COMPLETE" in script.stdout


def test_init_scaffold_validates_and_runs_locally(tmp_path: Path, locations: Locations) -> None:
    made = imagekit("init", tmp_path / "first", "--step", "make", "--step", "tally")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(tmp_path / "first" / "pipeline.yaml")
    assert imagekit("validate", tmp_path / "first").returncode == 0
    ran = imagekit("run", tmp_path / "first", "--local", *locations.args(), "-o", "json")
    assert ran.returncode == 0, ran.stderr
    assert ran.summary["exit_code"] == 0
    assert (locations.results / "tally-out").read_text() == "tally: 1000 lines from make-out on shard 0\n"
    again = imagekit("run", tmp_path / "first", "--local", *locations.args())
    assert again.returncode == 0 and "shard 0/1: already-complete" in again.stdout  # the run's report: a result


# --- the build's reference, tags, labels and metadata: a real engine and registry -------------------

@pytest.fixture
def local_engine() -> None:
    from imagekit_core.engine import connect

    connect(timeout=60).images.get(BASE_IMAGE)  # a missing engine or base image fails here, saying which


@pytest.mark.docker
def test_init_scaffold_builds_and_build_prints_only_references(tmp_path: Path, local_engine: None) -> None:
    import docker

    assert imagekit("init", tmp_path / "scaffold").returncode == 0
    repository = f"{REGISTRY}/imagekit-cli-{secrets.token_hex(4)}"
    tags = [f"{repository}/scaffold:a", f"{repository}/scaffold:b"]
    metadata_file = tmp_path / "build.json"
    local = imagekit("build", tmp_path / "scaffold", "--base", BASE_IMAGE, "-t", tags[0], "-t", tags[1],
                     "--label", "team=ci", "--metadata-file", metadata_file)
    assert local.returncode == 0, local.stderr
    assert local.stdout.splitlines() == tags  # stdout: the references, one per tag, nothing else
    assert "code-generate" in local.stderr  # the layer table and progress are on stderr
    client = docker.from_env()
    image_id = client.images.get(tags[0]).id
    for tag in tags:  # every tag applied
        image = client.images.get(tag)
        assert image.id == image_id and image.labels["team"] == "ci"
    described = json.loads(metadata_file.read_text())
    assert described["image_id"] == image_id and described["tags"] == tags and described["pushed"] is False
    assert {layer["name"] for layer in described["layers"]} >= {"code-generate", "code-summarize", "pipeline"}

    pushed = imagekit("build", tmp_path / "scaffold", "--base", BASE_IMAGE, "--push", "--label", "team=ci",
                      env={contract.REPO: repository})  # no --tag: $IMAGEKIT_REPO/<pipeline>:<content key>
    assert pushed.returncode == 0, pushed.stderr
    [last] = pushed.stdout.splitlines()
    assert last.startswith(f"{repository}/scaffold:") and "@sha256:" in last and " " not in last
    assert ": pushed" in pushed.stderr  # bytes per layer as they go
    # The line is usable as it is: pull it back by digest.
    pulled = subprocess.run(["docker", "pull", "-q", last], capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 0, pulled.stderr
    for tag in [*tags, last.split("@")[0]]:
        client.images.remove(tag, force=True)
