"""The example pipeline, built with each backend, runs in a container and gives the right answer."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures_engine import RUNTIME_UID, BuiltImage, assert_right_wordfreq, run_pipeline_image

pytestmark = pytest.mark.docker


def test_docker_built_example_runs_and_counts_right(example_image_docker: BuiltImage, tmp_path: Path) -> None:
    run = run_pipeline_image(example_image_docker.tag, tmp_path / "results", shard_index=0)
    assert_right_wordfreq(run, example_image_docker.pipeline, tmp_path, 0)


def test_buildah_built_example_runs_and_counts_right(example_image_buildah: BuiltImage,
                                                     example_image_buildah_in_docker: str, tmp_path: Path) -> None:
    run = run_pipeline_image(example_image_buildah_in_docker, tmp_path / "results", shard_index=1)
    assert_right_wordfreq(run, example_image_buildah.pipeline, tmp_path, 1)


def _python_in(docker_client: Any, image: str, code: str, **environment: str) -> str:
    output = docker_client.containers.run(image, entrypoint=["python3", "-c", code], environment=environment,
                                          network_disabled=True, remove=True)
    return output.decode().strip()


def test_conflicting_numpy_versions_each_in_its_own_step(docker_client: Any, example_image_docker: BuiltImage) -> None:
    image = example_image_docker.tag
    version = "import numpy; print(numpy.__version__)"
    assert _python_in(docker_client, image, version, PYTHONPATH="/opt/imagekit/deps/tokenize") == "1.26.4"
    assert _python_in(docker_client, image, version, PYTHONPATH="/opt/imagekit/deps/count") == "2.1.3"
    # Outside a step's own directory there is no numpy at all: nothing leaks between steps.
    assert _python_in(docker_client, image, "import importlib.util; print(importlib.util.find_spec('numpy'))") == "None"


def test_image_runs_as_non_root_and_every_file_is_readable_by_it(docker_client: Any,
                                                                  example_image_docker: BuiltImage) -> None:
    image = docker_client.images.get(example_image_docker.tag)
    assert image.attrs["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}"
    script = "id -u; find /opt/imagekit ! -readable -print; find /opt/imagekit -type d ! -executable -print"
    output = docker_client.containers.run(example_image_docker.tag, entrypoint=["sh", "-c", script],
                                          network_disabled=True, remove=True).decode().split()
    assert output == [str(RUNTIME_UID)], f"unreadable for uid {RUNTIME_UID}: {output[1:]}"


TREE_LISTING = ("cd /opt/imagekit && find . -exec stat -c '%n %a %u:%g %s %F' {} + | LC_ALL=C sort; "
                "find . -type f -exec sha256sum {} + | LC_ALL=C sort")


def test_both_backends_give_the_same_file_trees(docker_client: Any, example_image_docker: BuiltImage,
                                                example_image_buildah_in_docker: str) -> None:
    trees = [docker_client.containers.run(image, entrypoint=["sh", "-c", TREE_LISTING], network_disabled=True,
                                          remove=True).decode()
             for image in (example_image_docker.tag, example_image_buildah_in_docker)]
    assert "./deps/tokenize/numpy/__init__.py" in trees[0]
    assert "./pipeline/steps/linestats/linestats.sh 644 0:0" in trees[0]
    assert trees[0] == trees[1]


def test_layer_order_is_base_then_deps_then_pipeline_then_code(example_image_docker: BuiltImage) -> None:
    kinds = [layer["kind"] for layer in example_image_docker.layers]
    names = [layer["name"] for layer in example_image_docker.layers if layer["kind"] != "base"]
    assert kinds == sorted(kinds, key=["base", "deps", "pipeline", "code"].index)
    assert names == ["deps-tokenize", "deps-count", "pipeline", "code-generate", "code-tokenize", "code-count",
                     "code-linestats", "code-report"]
