"""The S3 client layer in a real image: a pipeline that uses s3 gets boto3 and its deps in a layer of their
own, right on the runtime base, with an SBOM; the same pipeline without s3 gets exactly the layers it had."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, BuiltImage, build_json, copy_pipeline
from imagekit.build.s3client import S3_CLIENT, client_lock
from imagekit_core import contract

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # builds and runs an s3 pipeline's image

TAG = f"{REGISTRY}/imagekit-test/wordfreq-s3client:docker"
SINK = "sinks:\n  counts: s3://imagekit-test/{pipeline}/shard-{shard}/counts\n"


@pytest.fixture(scope="module")
def s3_wordfreq(example_image_docker: BuiltImage, build_env: dict[str, str],
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's wordfreq, plus one s3 sink: the same steps, so the same step layers."""
    pipeline = copy_pipeline(tmp_path_factory.mktemp("s3client") / "wordfreq")
    with open(pipeline / "pipeline.yaml", "a") as spec:
        spec.write(SINK)
    return build_json(imagekit("build", pipeline, "--tag", TAG, "--backend", "docker", "--base", BASE_IMAGE,
                               "--output", "json", env=build_env))


def test_the_client_layer_sits_on_the_runtime_base_and_the_rest_is_unchanged(
        s3_wordfreq: dict[str, Any], example_image_docker: BuiltImage) -> None:
    plain = [(layer["name"], layer["digest"]) for layer in example_image_docker.layers]
    with_s3 = [(layer["name"], layer["digest"]) for layer in s3_wordfreq["layers"]]
    assert S3_CLIENT not in dict(plain)
    assert not any(sbom["name"] == S3_CLIENT for sbom in example_image_docker.report["sboms"])
    names = [name for name, _ in plain]
    runtime = names.index("runtime")
    assert [name for name, _ in with_s3] == [*names[:runtime + 1], S3_CLIENT, *names[runtime + 1:]]
    client = next(layer for layer in s3_wordfreq["layers"] if layer["name"] == S3_CLIENT)
    assert client["kind"] == "deps" and client["steps"] == [] and client["size"] > 1_000_000
    # Every other layer is the same but the pipeline layer (pipeline.yaml has the sink).
    changed = {name for (name, digest) in with_s3 if name != S3_CLIENT and dict(plain)[name] != digest}
    assert changed == {"pipeline"}


def test_the_client_has_an_sbom_of_the_locked_packages(s3_wordfreq: dict[str, Any]) -> None:
    sbom = next(sbom for sbom in s3_wordfreq["sboms"] if sbom["name"] == S3_CLIENT)
    assert sbom["layer"] == S3_CLIENT
    assert sbom["path"] == f"{contract.IMAGE_SBOM_DIR}/{S3_CLIENT}.cdx.json"
    locked = {pin.name: pin.version for pin in client_lock().pins}
    assert {name.lower().replace("_", "-"): version for name, version in sbom["packages"].items()} == locked
    from_image = imagekit("sbom", TAG, "--step", S3_CLIENT)
    assert from_image.returncode == 0, from_image.stderr
    assert {c["name"] for c in from_image.summary["components"]} == set(sbom["packages"])


def test_boto3_imports_from_the_client_directory_and_steps_do_not_see_it(s3_wordfreq: dict[str, Any],
                                                                          docker_client: Any, tmp_path: Path) -> None:
    def python(code: str) -> tuple[int, str]:
        container = docker_client.containers.run(TAG, entrypoint=["python3", "-c", code], network_disabled=True,
                                                 detach=True)
        try:
            code_ = container.wait(timeout=120)["StatusCode"]
            return code_, container.logs().decode()
        finally:
            container.remove(force=True)

    status, output = python(f"import sys; sys.path.insert(0, {contract.IMAGE_S3_CLIENT_DIR!r}); import boto3; "
                            "print(boto3.__file__)")
    assert status == 0, output
    assert output.strip() == f"{contract.IMAGE_S3_CLIENT_DIR}/boto3/__init__.py"
    status, output = python("import boto3")  # the image's own environment: a step's
    assert status != 0 and "ModuleNotFoundError" in output
