"""A base image with python3 but without supervisor or pyyaml (like python:3.11-slim) gets them
installed offline by Containerfile.base, from wheels resolved on the host."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, BuiltImage, assert_right_wordfreq, build_json, run_pipeline_image

# slow: about 18 s (a bare base image is made, then the example built on it): outside `-m "not slow"`
pytestmark = [pytest.mark.docker, pytest.mark.slow]

BARE_BASE = "localhost/imagekit-test/python-without-supervisor:bookworm"
STRIP = ("rm -rf /usr/lib/python3/dist-packages/supervisor* /usr/lib/python3/dist-packages/yaml "
         "/usr/lib/python3/dist-packages/_yaml /usr/lib/python3/dist-packages/PyYAML* "
         "/usr/bin/supervisord /usr/bin/supervisorctl /usr/bin/echo_supervisord_conf")


@pytest.fixture(scope="module")
def bare_base(docker_client: Any, base_image_tag: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("bare-base")
    (context / "Containerfile").write_text(f"FROM {base_image_tag}\nRUN {STRIP}\n")
    docker_client.images.build(path=str(context), dockerfile="Containerfile", tag=BARE_BASE, rm=True)
    missing = docker_client.containers.run(
        BARE_BASE, entrypoint=["python3", "-c", "import importlib.util as u; print(u.find_spec('supervisor'), "
                                                "u.find_spec('yaml'))"], remove=True)
    assert missing.decode().split() == ["None", "None"]
    return BARE_BASE


def test_base_without_supervisor_and_pyyaml_gets_them_offline(bare_base: str, example_image_docker: BuiltImage,
                                                              build_env: dict[str, str], docker_client: Any,
                                                              tmp_path: Path) -> None:
    tag = f"{REGISTRY}/imagekit-test/wordfreq-bare-base:latest"
    report = build_json(imagekit("build", example_image_docker.pipeline, "--tag", tag, "--base", bare_base,
                                     "--output", "json", env=build_env))
    assert report["base"] == bare_base and report["runtime_base"] != example_image_docker.report["runtime_base"]
    versions = docker_client.containers.run(
        tag, entrypoint=["python3", "-c", "import supervisor.options, yaml; print(yaml.__version__)"],
        network_disabled=True, remove=True)
    assert versions.decode().strip()
    run = run_pipeline_image(tag, tmp_path / "results", shard_index=0)
    assert_right_wordfreq(run, example_image_docker.pipeline, tmp_path, 0)
    # BASE_IMAGE itself already has both: nothing is installed there.
    assert example_image_docker.report["base"] == BASE_IMAGE
