"""Several platforms in each engine and from a registry: `platforms:` in pipeline.yaml builds the same image
per platform on Docker and on buildah (and again from nothing), buildah holds them as a manifest list, and
a multi-platform base in a registry gives each platform its own image; pushed, a blob both platforms share
is uploaded once."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, SMALL_CORPUS, PipelineRun, assert_right_wordfreq, build_json, copy_pipeline
from imagekit.publish.index_push import push_index
from imagekit.publish.publisher import Published
from imagekit.publish.registry import RegistryClient
from imagekit_core.platforms import Platform

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SHARED = ("runtime", "pipeline", "code-count", "code-tokenize")  # pure Python: the same layer on each platform


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


def ids(built: dict[str, Any]) -> dict[str, str]:
    return {platform: report["image_id"] for platform, report in built["platforms"].items()}


def test_platforms_in_the_pipeline_build_the_same_images_on_docker_buildah_and_from_nothing(
        arm64_base: str, build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    with (pipeline / "pipeline.yaml").open("a") as yaml:
        yaml.write(f"platforms:\n  linux/amd64:\n  linux/arm64: {arm64_base}\n")
    tag = f"{REGISTRY}/imagekit-test/wordfreq-platforms:t{uuid.uuid4().hex[:8]}"
    by_engine = {engine: build_json(imagekit("build", pipeline, "--backend", engine, "--base", BASE_IMAGE, "--tag",
                                             tag, "-o", "json", env=build_env, timeout=1200))
                 for engine in ("docker", "buildah")}
    assert list(by_engine["docker"]["platforms"]) == ["linux/amd64", "linux/arm64"]
    assert ids(by_engine["docker"]) == ids(by_engine["buildah"])
    amd64, arm64 = ids(by_engine["docker"])["linux/amd64"], ids(by_engine["docker"])["linux/arm64"]
    assert amd64 != arm64
    # Docker holds one image per name: the tag is this machine's platform's; each goes by TAG-<arch> too.
    assert docker("image", "inspect", "--format", "{{.Id}}", tag) == amd64
    assert docker("image", "inspect", "--format", "{{.Id}} {{.Architecture}}", f"{tag}-arm64") == f"{arm64} arm64"
    # buildah holds both under the tag, as a manifest list naming each image's manifest with its platform.
    listed = json.loads(subprocess.run(["buildah", "manifest", "inspect", tag], capture_output=True, text=True,
                                       check=True).stdout)
    assert {entry["platform"]["architecture"]: entry["digest"] for entry in listed["manifests"]} == {
        platform.split("/")[1]: report["manifest_digest"]
        for platform, report in by_engine["buildah"]["platforms"].items()}
    # `push --platform` sends what the build left in the engine: each TAG-<arch>, then the index.
    destination = f"{tag}-pushed"
    index_ref = imagekit("push", destination, "--source", tag, "--platform", "linux/amd64,linux/arm64")
    assert index_ref.returncode == 0, index_ref.stderr[-2000:]
    assert index_ref.stdout.strip().startswith(f"{destination}@sha256:")
    for architecture, image in (("amd64", amd64), ("arm64", arm64)):
        seen = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-arch", architecture,
                                          "--config", f"docker://{destination}"], capture_output=True, text=True,
                                         check=True).stdout)
        assert seen["architecture"] == architecture and seen["rootfs"]["diff_ids"][-1] == json.loads(docker(
            "image", "inspect", "--format", "{{json .RootFS.Layers}}", image))[-1]
    # buildah's manifest list is pushed whole by a plain `push`: each image, then the index.
    listed = imagekit("push", f"{tag}-list", "--source", tag, "--backend", "buildah")
    assert listed.returncode == 0, listed.stderr[-2000:]
    pushed_index = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw",
                                              f"docker://{tag}-list"], capture_output=True, text=True,
                                             check=True).stdout)
    assert [entry["platform"]["architecture"] for entry in pushed_index["manifests"]] == ["amd64", "arm64"]
    assert listed.stdout.strip().startswith(f"{tag}-list@sha256:")
    # `run --platform linux/arm64` runs the pipeline in the arm64 image (TAG-arm64), emulated, with this run's
    # directories: the answer the amd64 reference gives, the results where the run was told to put them.
    run_dir = tmp_path / "run"
    run = imagekit("run", pipeline, "--platform", "linux/arm64", "--image", tag, "--results", run_dir / "results",
                   "--ssd", run_dir / "ssd", "--pv", run_dir / "pv", "--shard-index", "0", "--shard-count", "2",
                   "--param", f"WORDFREQ_BYTES={SMALL_CORPUS}", timeout=900)
    assert f"in {tag}-arm64 (linux/arm64, emulated)" in run.stderr
    assert_right_wordfreq(PipelineRun(run.returncode, run.stdout + run.stderr, run_dir / "results"), pipeline,
                          tmp_path, 0, owner=os.getuid())  # the run's files are the caller's
    assert any((run_dir / "ssd").rglob("*"))  # checkpointed where a run here would resume from
    # From nothing (no engine or host cache) the arm64 image comes out the same.
    again = build_json(imagekit("build", pipeline, "--platform", "linux/arm64", "--no-cache", "--base", BASE_IMAGE,
                                "--tag", f"{tag}-again", "-o", "json", env=build_env, timeout=1200))
    assert ids(again) == {"linux/arm64": arm64}


def multi_platform_base(arm64_base: str, platforms: tuple[str, ...]) -> str:
    """The two offline bases pushed to the registry, and an index of those named under one tag."""
    repository = "imagekit-test/debian-python"
    client = RegistryClient(REGISTRY)
    pushed = {}
    for architecture, local in (("amd64", BASE_IMAGE), ("arm64", arm64_base)):
        docker("tag", local, f"{REGISTRY}/{repository}:{architecture}")
        docker("push", "--quiet", f"{REGISTRY}/{repository}:{architecture}")
        _, _, digest = client.manifest_bytes(repository, architecture)
        pushed[Platform("linux", architecture)] = Published(reference="", digest=digest, layers=(), seconds=0)
    name = f"{REGISTRY}/{repository}:{'-'.join(platforms)}"
    push_index(name, {platform: image for platform, image in pushed.items() if platform.architecture in platforms})
    return name


def test_a_multi_platform_base_gives_each_platform_its_image_and_a_shared_blob_is_pushed_once(
        arm64_base: str, build_env: dict[str, str], tmp_path: Path) -> None:
    base = multi_platform_base(arm64_base, ("amd64", "arm64"))
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    run = uuid.uuid4().hex[:8]
    with (pipeline / "pipeline.yaml").open("a") as yaml:  # a pipeline layer no registry has seen
        yaml.write(f"# {run}\n")
    tag = f"{REGISTRY}/imagekit-test/wordfreq-multibase:t{run}"
    metadata = tmp_path / "metadata.json"
    built = build_json(imagekit("build", pipeline, "--base", base, "--platform", "linux/amd64,linux/arm64",
                                "--tag", tag, "--push", "--cache-to", f"{tag}-cache", "--metadata-file", metadata,
                                "-o", "json", env=build_env, timeout=1200))
    assert json.loads(metadata.read_text()) == built  # --metadata-file holds what -o json printed
    [cache_index] = built["cache_to"]  # --cache-to gets the index too, as the cache of later builds
    assert cache_index["reference"].startswith(f"{tag}-cache@sha256:") and set(cache_index["images"]) == {
        "linux/amd64", "linux/arm64"}
    for platform, local in (("linux/amd64", BASE_IMAGE), ("linux/arm64", arm64_base)):
        own = json.loads(docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", local))
        layers = [layer["digest"] for layer in built["platforms"][platform]["layers"]]
        assert layers[:len(own)] == own, platform
    [index] = built["indexes"]
    pushed = {platform: {layer["diff_id"]: layer for layer in image["layers"]}
              for platform, image in index["images"].items()}
    names = {layer["digest"]: layer["name"] for layer in built["platforms"]["linux/amd64"]["layers"]}
    shared = [diff_id for diff_id in pushed["linux/amd64"] if names.get(diff_id) in SHARED]
    assert len(shared) == len(SHARED)
    for diff_id in shared:  # the same blob under both manifests, sent at most once
        first, second = pushed["linux/amd64"][diff_id], pushed["linux/arm64"][diff_id]
        assert first["digest"] == second["digest"], names[diff_id]
        assert not (first["uploaded"] and second["uploaded"]), names[diff_id]
        if names[diff_id] == "pipeline":  # new: sent with the first platform's image, found by the second's
            assert (first["uploaded"], second["uploaded"]) == (True, False)


def test_a_base_without_the_platform_is_refused_naming_what_it_has(
        arm64_base: str, build_env: dict[str, str], tmp_path: Path) -> None:
    base = multi_platform_base(arm64_base, ("amd64",))
    result = imagekit("build", copy_pipeline(tmp_path / "wordfreq"), "--base", base, "--platform", "linux/arm64",
                      "--tag", f"{REGISTRY}/imagekit-test/wordfreq-nobase:t", env=build_env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --base {base}: no linux/arm64 image in it (its index holds linux/amd64) (fix: a base with a linux/arm64 "
        "image, or --platform-base linux/arm64=REF)")


def test_an_image_pushed_as_another_platforms_is_refused_before_the_index(engine_ready: None) -> None:
    tag = f"{REGISTRY}/imagekit-test/mislabelled:t{uuid.uuid4().hex[:8]}"
    docker("tag", BASE_IMAGE, f"{tag}-arm64")  # an amd64 image under the arm64 name
    result = imagekit("push", tag, "--platform", "linux/arm64")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tag}-arm64@sha256:") and last.endswith(
        ": a linux/amd64 image, not linux/arm64 (fix: push the linux/arm64 image as linux/arm64's, e.g. one built "
        "with --platform linux/arm64)")
    assert subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{tag}"],
                          capture_output=True).returncode != 0  # no index was written
