"""Labels name the pipeline, its source and each step's layers; `imagekit inspect` shows them with sizes."""
from __future__ import annotations

import pytest
from fixtures_engine import BuiltImage, build_json, imagekit_cli

pytestmark = pytest.mark.docker

OCI = ("source", "revision", "created", "title", "version")


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_labels_carry_oci_metadata_and_step_layer_digests(backend: str, example_image_docker: BuiltImage,
                                                         example_image_buildah: BuiltImage) -> None:
    image = example_image_docker if backend == "docker" else example_image_buildah
    labels = image.report["labels"]
    for key in OCI:
        assert labels[f"org.opencontainers.image.{key}"], key
    assert labels["org.opencontainers.image.title"] == "wordfreq"
    assert labels["io.imagekit.pipeline"] == "wordfreq"
    assert labels["io.imagekit.steps"] == "generate,tokenize,count,linestats,report"
    digests = {layer["name"]: layer["digest"] for layer in image.layers}
    assert labels["io.imagekit.step.tokenize.layers"] == f"{digests['deps-tokenize']},{digests['code-tokenize']}"
    assert labels["io.imagekit.step.linestats.layers"] == digests["code-linestats"]
    # What the engine holds is what the report says.
    inspected = build_json(imagekit_cli("inspect", image.tag, "--source", backend, "--output", "json"))
    assert inspected["labels"]["io.imagekit.step.count.layers"] == labels["io.imagekit.step.count.layers"]


def test_inspect_shows_each_layers_step_and_size(example_image_docker: BuiltImage) -> None:
    data = build_json(imagekit_cli("inspect", example_image_docker.tag, "--output", "json"))
    assert data["pipeline"] == "wordfreq" and data["source"] == "docker"
    assert [layer["digest"] for layer in data["layers"]] == [layer["digest"] for layer in example_image_docker.layers]
    steps = {layer["name"]: layer["steps"] for layer in data["layers"]}
    assert steps["deps-count"] == ["count"] and steps["code-report"] == ["report"] and steps["pipeline"] == []
    assert all(isinstance(layer["size"], int) for layer in data["layers"])
    assert data["steps"]["tokenize"]["size"] > 30 * 1024 * 1024  # numpy
    assert data["steps"]["linestats"]["size"] < 64 * 1024
    assert data["total_size"] > data["steps"]["tokenize"]["size"] + data["steps"]["count"]["size"]
    text = imagekit_cli("inspect", example_image_docker.tag)
    assert text.returncode == 0
    assert "deps-tokenize" in text.stderr and "MiB" in text.stderr


def test_inspect_of_an_unknown_image_exits_2() -> None:
    result = imagekit_cli("inspect", "localhost/imagekit-test/no-such-image:1", "--source", "docker")
    assert result.returncode == 2
