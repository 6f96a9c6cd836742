"""Bad input exits 2 and says what to fix; a missing engine or registry exits 3 and says how to get one."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, BuiltImage, copy_pipeline

pytestmark = pytest.mark.docker


def test_missing_step_directory_exits_2_naming_it(tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    shutil.rmtree(pipeline / "steps" / "report")
    result = imagekit("build", pipeline, "--tag", "localhost/imagekit-test/bad:1")
    assert result.returncode == 2, result.stderr
    assert "steps/report" in result.stderr and "not found" in result.stderr


def test_unresolvable_requirement_exits_2_naming_step_and_requirement(engine_ready: None, tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    (pipeline / "steps" / "count" / "requirements.txt").write_text("numpy==2.1.3\nimagekit-no-such-package==0.0.1\n")
    env = {**os.environ, "IMAGEKIT_CACHE_DIR": str(tmp_path / "cache"), "PIP_RETRIES": "0"}
    result = imagekit("build", pipeline, "--tag", "localhost/imagekit-test/bad:2", "--base", BASE_IMAGE, env=env)
    assert result.returncode == 2, result.stderr
    error = result.stderr.replace("\n", " ")
    assert "step 'count'" in error
    assert "imagekit-no-such-package==0.0.1" in error
    assert "requirements.txt" in error


def test_registry_unreachable_exits_3(example_image_docker: BuiltImage) -> None:
    result = imagekit("push", "127.0.0.1:1/imagekit-test/wordfreq:x", "--source", example_image_docker.tag)
    assert result.returncode == 3, result.stderr
    assert "127.0.0.1:1" in result.stderr and "unreachable" in result.stderr


def test_build_push_to_unreachable_registry_exits_3(example_image_docker: BuiltImage) -> None:
    result = imagekit("build", example_image_docker.pipeline, "--tag", "127.0.0.1:1/imagekit-test/wordfreq:x",
                          "--base", BASE_IMAGE, "--push")
    assert result.returncode == 3, result.stderr


def test_no_docker_engine_exits_3_with_a_hint(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock"}
    result = imagekit("build", "pipelines/wordfreq", "--tag", "localhost/imagekit-test/x:1", env=env)
    assert result.returncode == 3, result.stderr
    assert "no Docker engine" in result.stderr and "apt-get install docker.io" in result.stderr


def test_no_buildah_exits_3_with_a_hint(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    env = {**os.environ, "PATH": str(empty_path)}
    result = imagekit("build", "pipelines/wordfreq", "--tag", "localhost/imagekit-test/x:1",
                          "--backend", "buildah", env=env)
    assert result.returncode == 3, result.stderr
    assert "buildah not found" in result.stderr and "apt-get install buildah" in result.stderr


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_a_tag_no_engine_accepts_exits_2_before_building(backend: str, tmp_path: Path) -> None:
    env = {**os.environ, "IMAGEKIT_CACHE_DIR": str(tmp_path / "cache")}
    result = imagekit("build", "pipelines/wordfreq", "--tag", "Wordfreq Latest", "--backend", backend, env=env)
    assert result.returncode == 2, result.stderr
    assert "--tag 'Wordfreq Latest' is not an image reference" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before any work


def test_unknown_backend_exits_2() -> None:
    result = imagekit("build", "pipelines/wordfreq", "--tag", "x/y:1", "--backend", "podman")
    assert result.returncode == 2
    assert "docker or buildah" in result.stderr


def test_push_needs_a_registry_in_the_reference() -> None:
    result = imagekit("push", "wordfreq:latest")
    assert result.returncode == 2
    assert "names no registry" in result.stderr
