"""SOURCE_DATE_EPOCH: two clean builds, one digest (buildah); identical layers (Docker)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, EPOCH, BuiltImage, build_json

# slow: about 18 s (two clean builds without cache): outside `-m "not slow"`
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def clean_build(pipeline: Path, tag: str, backend: str, env: dict[str, str], cache: Path) -> dict:
    """--no-cache and an empty imagekit cache: nothing from an earlier build is used."""
    env = {**env, "IMAGEKIT_CACHE_DIR": str(cache), "SOURCE_DATE_EPOCH": EPOCH}
    return build_json(imagekit("build", pipeline, "--tag", tag, "--backend", backend, "--base", BASE_IMAGE,
                                   "--no-cache", "--output", "json", env=env))


def test_two_clean_buildah_builds_give_one_digest(example_image_buildah: BuiltImage, build_env: dict[str, str],
                                                  tmp_path: Path) -> None:
    reports = []
    for attempt in (1, 2):
        tag = f"localhost/imagekit-test/reproducible:{attempt}"
        subprocess.run(["buildah", "rmi", "-f", tag], capture_output=True)
        reports.append(clean_build(example_image_buildah.pipeline, tag, "buildah", build_env, tmp_path / f"c{attempt}"))
    first, second = reports
    assert not any(layer["cached"] for layer in second["layers"] if layer["kind"] != "base")
    assert first["manifest_digest"] and first["manifest_digest"] == second["manifest_digest"]
    assert first["image_id"] == second["image_id"]
    assert first["labels"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_docker_clean_build_gives_the_same_pipeline_layers(example_image_docker: BuiltImage,
                                                            build_env: dict[str, str], tmp_path: Path) -> None:
    # The classic builder stamps config and history with the build time, so image IDs differ
    # (see docs/build.md), but every layer imagekit lays out has the same digest.
    report = clean_build(example_image_docker.pipeline, "localhost/imagekit-test/reproducible:docker", "docker",
                         build_env, tmp_path / "cache")
    ours = [(layer["name"], layer["digest"]) for layer in report["layers"] if layer["kind"] != "base"]
    session = [(layer["name"], layer["digest"]) for layer in example_image_docker.layers if layer["kind"] != "base"]
    assert ours == session
