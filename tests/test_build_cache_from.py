"""`build --cache-from`: an empty runner (a fresh imagekit cache, no package index) rebuilds after a one-line
change by reusing the deps layers of the image pushed before, sends only the changed layer, and makes the
image a local build makes (same image ID), whether it pushes (left out of the engine) or loads."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import Environment, imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, assert_right_wordfreq, build_json, copy_pipeline, run_pipeline_image

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # builds, pushes and runs wordfreq: about 40 s

DEAD_INDEX = "http://127.0.0.1:9/simple"  # nothing listens: any resolution or download fails at once


def empty_runner(root: Path) -> dict[str, str | None]:
    """A CI runner's first build: no imagekit cache, and no package index either (to prove none is used)."""
    env: dict[str, str | None] = dict(os.environ)
    env.update({"IMAGEKIT_CACHE_DIR": str(root), "PIP_INDEX_URL": DEAD_INDEX, "PIP_EXTRA_INDEX_URL": "",
                "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"})
    return env


def build(pipeline: Path, tag: str, *args: str, env: Environment | None = None) -> dict[str, Any]:
    return build_json(imagekit("build", pipeline, "--base", BASE_IMAGE, "--tag", tag, *args, "-o", "json",
                               env=env, timeout=600))


@pytest.fixture(scope="module")
def pushed_then_changed(engine_ready: None, build_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                        ) -> tuple[Path, str]:
    """wordfreq built and pushed as REPO:v1, then one line of `count` changed (a line no other run wrote)."""
    pipeline = copy_pipeline(tmp_path_factory.mktemp("cache-from") / "wordfreq")
    repository = f"{REGISTRY}/imagekit-test/cache-from-{uuid.uuid4().hex[:8]}"
    build(pipeline, f"{repository}:v1", "--push", env=build_env)
    with open(pipeline / "steps" / "count" / "main.py", "a") as main:
        main.write(f"# changed by {uuid.uuid4().hex}\n")
    return pipeline, repository


def test_an_empty_runner_reuses_the_registry_layers_and_pushes_only_the_change(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline, repository = pushed_then_changed
    built = build(pipeline, f"{repository}:v2", "--push", "--cache-from", f"{repository}:v1",
                  env=empty_runner(tmp_path / "cache"))
    by_name = {layer["name"]: layer for layer in built["layers"]}
    assert by_name["deps-tokenize"]["from_registry"] and by_name["deps-count"]["from_registry"]
    assert built["cache_images"] and built["cache_images"][0].startswith(f"{repository}@sha256:")
    assert built["loaded"] is False  # nothing downloaded only to load it
    uploaded = [layer for layer in built["pushed"]["layers"] if layer["uploaded"]]
    assert [layer["diff_id"] for layer in uploaded] == [by_name["code-count"]["digest"]]

    local = build(pipeline, f"{repository}:local", env=build_env)  # the same change, built with every layer here
    assert built["image_id"] == local["image_id"]

    # What the registry now holds under v2 runs, and gives wordfreq's right answer.
    reference = built["reference"]
    run = run_pipeline_image(reference, tmp_path / "results", shard_index=0)
    assert_right_wordfreq(run, pipeline, tmp_path, 0)


def test_a_load_fetches_the_reused_layers_and_gives_the_same_image(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline, repository = pushed_then_changed
    built = build(pipeline, f"{repository}:loaded", "--cache-from", f"{repository}:v1",
                  env=empty_runner(tmp_path / "cache"))
    assert built["loaded"] is True
    assert [layer["name"] for layer in built["layers"] if layer["from_registry"]] == ["deps-tokenize", "deps-count"]
    local = build(pipeline, f"{repository}:local", env=build_env)
    assert built["image_id"] == local["image_id"]


def test_a_cache_image_that_is_not_there_is_said_once_and_the_build_goes_on(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str]) -> None:
    pipeline, repository = pushed_then_changed
    result = imagekit("build", pipeline, "--base", BASE_IMAGE, "--tag", f"{repository}:missing", "--cache-from",
                      f"{repository}:no-such-tag", "-o", "json", env=build_env, timeout=600)
    built = build_json(result)
    assert not built["cache_images"] and not any(layer["from_registry"] for layer in built["layers"])
    assert len([line for line in result.stderr.splitlines() if "no-such-tag" in line]) == 1


def test_cache_to_pushes_the_image_as_a_cache_for_later_builds(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline, repository = pushed_then_changed
    built = build(pipeline, f"{repository}:cached-to", "--cache-to", f"{repository}:buildcache", env=build_env)
    assert json.dumps(built["cache_to"]).count(f"{repository}:buildcache@sha256:") == 1
    again = build(pipeline, f"{repository}:from-cache", "--push", "--cache-from", f"{repository}:buildcache",
                  env=empty_runner(tmp_path / "cache"))
    assert again["image_id"] == built["image_id"]
    assert not any(layer["uploaded"] for layer in again["pushed"]["layers"])


def test_a_bad_cache_reference_is_one_line_and_exit_2(example_pipeline: Path) -> None:
    result = imagekit("build", example_pipeline, "--tag", f"{REGISTRY}/x:y", "--cache-from", "Not A Ref")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--cache-from" in result.stderr and "fix:" in result.stderr


def test_zstd_layers_are_pushed_by_imagekit_and_serve_as_a_cache(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str], tmp_path: Path) -> None:
    from imagekit.publish.registry import RegistryClient

    pipeline, repository = pushed_then_changed
    built = build(pipeline, f"{repository}:zstd", "--push", "--compression", "zstd", "--cache-from",
                  f"{repository}:v1", env=build_env)
    host, name = repository.split("/", 1)
    manifest = RegistryClient(host).manifest(name, "zstd")
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    # An empty runner loads from it: every zstd layer fetched, decompressed, checked; the same image.
    again = build(pipeline, f"{repository}:from-zstd", "--cache-from", f"{repository}:zstd",
                  env=empty_runner(tmp_path / "cache"))
    assert again["loaded"] and again["image_id"] == built["image_id"]
    assert [layer["name"] for layer in again["layers"] if layer["from_registry"]] == ["deps-tokenize", "deps-count"]


def test_zstd_without_a_registry_copy_of_the_base_is_one_line_and_exit_2(
        pushed_then_changed: tuple[Path, str], build_env: dict[str, str]) -> None:
    pipeline, repository = pushed_then_changed
    result = imagekit("build", pipeline, "--base", BASE_IMAGE, "--tag", f"{repository}:zstd-alone", "--push",
                      "--compression", "zstd", "--no-cache", env=build_env, timeout=600)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "--compression zstd" in last and "fix:" in last
