"""SBOMs in the image: one per step with requirements (in its deps layer) and one for the runtime base,
read back with `imagekit sbom` from Docker, buildah and the registry; and the build's own report of them."""
from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, BuiltImage

pytestmark = pytest.mark.docker


def sbom(*args: str) -> Any:
    result = imagekit("sbom", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def versions(document: dict[str, Any]) -> dict[str, str]:
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    return {component["name"]: component["version"] for component in document.get("components", [])}


def test_the_build_report_lists_each_sbom(example_image_docker: BuiltImage) -> None:
    listed = {entry["name"]: entry for entry in example_image_docker.report["sboms"]}
    assert set(listed) == {"runtime", "tokenize", "count"}
    assert listed["tokenize"]["packages"]["numpy"].startswith("1.26.")
    assert listed["count"]["packages"]["numpy"].startswith("2.1.")
    assert listed["count"]["path"] == "/opt/imagekit/sbom/count.cdx.json" and listed["count"]["layer"] == "deps-count"
    assert listed["runtime"]["layer"] == "runtime"


@pytest.mark.parametrize("source", ["docker", "buildah", "registry"])
def test_imagekit_sbom_reads_them_from_the_image(source: str, example_image_docker: BuiltImage,
                                                 example_image_buildah: BuiltImage,
                                                 example_image_buildah_in_docker: str) -> None:
    reference = {"docker": example_image_docker.tag, "buildah": example_image_buildah.tag,
                 "registry": example_image_buildah_in_docker}[source]
    tokenize = sbom(reference, "--step", "tokenize", "--source", source)
    assert versions(tokenize)["numpy"].startswith("1.26.")
    numpy = next(component for component in tokenize["components"] if component["name"] == "numpy")
    assert numpy["purl"].startswith("pkg:pypi/numpy@1.26.") and len(numpy["hashes"][0]["content"]) == 64
    assert numpy["licenses"]  # from numpy's own metadata
    every = sbom(reference, "--source", source)
    assert set(every) == {"runtime", "tokenize", "count"}
    assert versions(every["count"])["numpy"].startswith("2.1.")
    assert every["runtime"]["metadata"]["component"]["name"] == "imagekit-runtime"


def test_a_step_without_requirements_has_no_sbom(example_image_docker: BuiltImage) -> None:
    result = imagekit("sbom", example_image_docker.tag, "--step", "report")
    assert result.returncode == 2
    assert "no SBOM" in result.stderr and "tokenize" in result.stderr


def test_labels_name_the_base_by_digest(example_image_docker: BuiltImage, docker_client: Any) -> None:
    labels = example_image_docker.report["labels"]
    assert labels["org.opencontainers.image.base.name"] == BASE_IMAGE
    assert labels["org.opencontainers.image.base.digest"] == docker_client.images.get(BASE_IMAGE).id
