"""Labels name the pipeline, its source and each step's layers; `imagekit inspect` shows them with sizes."""
from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BuiltImage, build_json

pytestmark = pytest.mark.docker

OCI = ("revision", "created", "title", "version")  # `source` only from a git remote: a test copy has none


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_labels_carry_oci_metadata_and_step_layer_digests(backend: str, example_image_docker: BuiltImage,
                                                         example_image_buildah: BuiltImage) -> None:
    image = example_image_docker if backend == "docker" else example_image_buildah
    labels = image.report["labels"]
    for key in OCI:
        assert labels[f"org.opencontainers.image.{key}"], key
    assert "org.opencontainers.image.source" not in labels  # never a local path
    assert labels["org.opencontainers.image.title"] == "wordfreq"
    assert labels["dev.imagekit.pipeline"] == "wordfreq"
    assert labels["dev.imagekit.steps"] == "generate,tokenize,count,linestats,report"
    digests = {layer["name"]: layer["digest"] for layer in image.layers}
    assert labels["dev.imagekit.step.tokenize.layers"] == f"{digests['deps-tokenize']},{digests['code-tokenize']}"
    assert labels["dev.imagekit.step.linestats.layers"] == digests["code-linestats"]
    # What the engine holds is what the report says.
    inspected = build_json(imagekit("inspect", image.tag, "--source", backend, "--output", "json"))
    assert inspected["labels"]["dev.imagekit.step.count.layers"] == labels["dev.imagekit.step.count.layers"]


def test_inspect_shows_each_layers_step_and_size(example_image_docker: BuiltImage) -> None:
    data = build_json(imagekit("inspect", example_image_docker.tag, "--output", "json"))
    assert data["pipeline"] == "wordfreq" and data["source"] == "docker"
    assert [layer["digest"] for layer in data["layers"]] == [layer["digest"] for layer in example_image_docker.layers]
    steps = {layer["name"]: layer["steps"] for layer in data["layers"]}
    assert steps["deps-count"] == ["count"] and steps["code-report"] == ["report"] and steps["pipeline"] == []
    assert all(isinstance(layer["size"], int) for layer in data["layers"])
    assert data["steps"]["tokenize"]["size"] > 30 * 1024 * 1024  # numpy
    assert data["steps"]["linestats"]["size"] < 64 * 1024
    assert data["total_size"] > data["steps"]["tokenize"]["size"] + data["steps"]["count"]["size"]
    text = imagekit("inspect", example_image_docker.tag)
    assert text.returncode == 0
    assert "deps-tokenize" in text.stdout and "MiB" in text.stdout


def test_inspect_of_an_unknown_image_exits_2() -> None:
    result = imagekit("inspect", "localhost/imagekit-test/no-such-image:1", "--source", "docker")
    assert result.returncode == 2


def test_both_engines_hold_the_same_step_layers(example_image_docker: BuiltImage,
                                                example_image_buildah: BuiltImage) -> None:
    # Above the runtime base every layer is imagekit's own tarball: same pipeline, same layer digests,
    # whichever engine loaded it (the runtime bases differ: buildah's is built with SOURCE_DATE_EPOCH).
    def ours(image: BuiltImage) -> list[tuple[str, str]]:
        return [(layer["name"], layer["digest"]) for layer in image.layers if layer["kind"] != "base"]

    assert ours(example_image_docker) == ours(example_image_buildah)
    assert len(ours(example_image_docker)) == 8


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_history_has_one_entry_per_layer_naming_its_step(backend: str, docker_client: Any,
                                                        example_image_docker: BuiltImage,
                                                        example_image_buildah: BuiltImage) -> None:
    image = example_image_docker if backend == "docker" else example_image_buildah
    if backend == "docker":
        entries = [entry["CreatedBy"] for entry in reversed(docker_client.api.history(image.tag))]
        layered = len(docker_client.api.inspect_image(image.tag)["RootFS"]["Layers"])
    else:
        data = json.loads(subprocess.run(["buildah", "inspect", "--type", "image", image.tag], check=True,
                                         capture_output=True, text=True).stdout)["OCIv1"]
        assert sum(not entry.get("empty_layer") for entry in data["history"]) == len(data["rootfs"]["diff_ids"])
        entries = [entry.get("created_by", "") for entry in data["history"]]
        layered = len(data["rootfs"]["diff_ids"])
    assert layered == len(image.layers)
    # The last eight entries are imagekit's layers, in image order.
    assert entries[-8:] == [
        "imagekit: deps layer of step tokenize (deps-tokenize.tar)",
        "imagekit: deps layer of step count (deps-count.tar)",
        "imagekit: pipeline layer (pipeline.tar)",
        "imagekit: code layer of step generate (code-generate.tar)",
        "imagekit: code layer of step tokenize (code-tokenize.tar)",
        "imagekit: code layer of step count (code-count.tar)",
        "imagekit: code layer of step linestats (code-linestats.tar)",
        "imagekit: code layer of step report (code-report.tar)",
    ]
