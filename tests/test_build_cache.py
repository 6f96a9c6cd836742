"""Rebuilds reuse layers: a code change rebuilds that step's code layer, a requirements change its deps layer."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, EPOCH, REGISTRY, BuiltImage, build_json, copy_pipeline
from imagekit.build.engines import get_backend

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # each rebuilds wordfreq on both engines


def build(pipeline: Path, tag: str, backend: str, env: dict[str, str]) -> dict[str, Any]:
    return build_json(imagekit("build", pipeline, "--tag", tag, "--backend", backend, "--base", BASE_IMAGE,
                                   "--output", "json", env=env))


def rebuild_after(change: Callable[[Path], None], source: Path, tag: str, backend: str, env: dict[str, str],
                  tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build a copy of the pipeline at source, apply change to it, build it again: both reports."""
    pipeline = copy_pipeline(tmp_path / "wordfreq", source)
    first = build(pipeline, tag, backend, env)
    change(pipeline)
    return first, build(pipeline, tag, backend, env)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["name"]: layer for layer in report["layers"] if layer["kind"] != "base"}


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_code_change_rebuilds_only_that_steps_code_layer(backend: str, example_image_docker: BuiltImage,
                                                        build_env: dict[str, str], tmp_path: Path) -> None:
    def add_a_line(pipeline: Path) -> None:
        main = pipeline / "steps" / "count" / "main.py"
        # A line never built before: engines and the registry outlive test runs.
        main.write_text(main.read_text() + f"# one more line {uuid.uuid4()}\n")

    first, report = rebuild_after(add_a_line, example_image_docker.pipeline,
                                  f"{REGISTRY}/imagekit-test/cache-{backend}:latest", backend, build_env, tmp_path)

    layers = by_name(report)
    assert report["changed_layers"] == ["code-count"]
    # Everything before the changed layer came from the engine's cache ...
    for name in ("deps-tokenize", "deps-count", "pipeline", "code-generate", "code-tokenize"):
        assert layers[name]["cached"], name
    # ... what follows was re-run but gave the same layers (same digests: nothing new to push).
    for name in ("code-linestats", "code-report"):
        assert layers[name]["unchanged"], name
    assert set(report["reused_layers"]) == set(layers) - {"code-count"}
    assert not layers["code-count"]["cached"] and layers["code-count"]["unchanged"] is False
    # The tag moved to the new image; the one it named before is kept (untagged, unless another build of the same
    # content still names it: a copy of a pipeline builds to the same image ID wherever it is).
    engine = get_backend(backend)
    assert engine.inspect(report["tag"]).id == report["image_id"] and report["image_id"] not in engine.untagged()
    assert engine.find(first["image_id"]) is not None


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_requirements_change_rebuilds_that_steps_deps_layer(backend: str, example_image_docker: BuiltImage,
                                                            build_env: dict[str, str], tmp_path: Path) -> None:
    def add_a_requirement(pipeline: Path) -> None:
        requirements = pipeline / "steps" / "count" / "requirements.txt"
        requirements.write_text(requirements.read_text() + "six==1.16.0\n")

    _, report = rebuild_after(add_a_requirement, example_image_docker.pipeline,
                              f"{REGISTRY}/imagekit-test/cache-requirements-{backend}:latest", backend, build_env,
                              tmp_path)

    layers = by_name(report)
    # requirements.txt is part of the step package (the runtime reads it), so the code layer changes too.
    assert report["changed_layers"] == ["deps-count", "code-count"]
    assert layers["deps-tokenize"]["cached"]
    for name, layer in layers.items():  # what follows was re-run by the engine, to the same digests
        if name not in ("deps-tokenize", "deps-count", "code-count"):
            assert layer["unchanged"], name


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_unchanged_rebuild_reuses_every_layer(backend: str, example_image_docker: BuiltImage,
                                              example_image_buildah: BuiltImage, build_env: dict[str, str]) -> None:
    image = example_image_docker if backend == "docker" else example_image_buildah
    env = build_env if backend == "docker" else {**build_env, "SOURCE_DATE_EPOCH": EPOCH}  # as it was built
    report = build(image.pipeline, image.tag, backend, env)
    assert [layer["digest"] for layer in report["layers"]] == [layer["digest"] for layer in image.layers]
    if backend == "buildah":  # every input the same, SOURCE_DATE_EPOCH too: the very same image
        assert report["image_id"] == image.report["image_id"]
    assert report["runtime_base_reused"]
    assert report["rebuilt_layers"] == []
    assert set(report["reused_layers"]) == set(by_name(report))
