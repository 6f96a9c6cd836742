"""One pipeline, one base, one SOURCE_DATE_EPOCH: one image ID, on Docker and buildah and on every clean build."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, EPOCH, BuiltImage, build_json, copy_pipeline
from imagekit.build.labels import commit_time

# slow: about 18 s (two clean builds without cache): outside `-m "not slow"`
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def clean_build(pipeline: Path, tag: str, backend: str, env: dict[str, str], cache: Path,
                epoch: str | None = EPOCH) -> dict:
    """--no-cache and an empty imagekit cache: nothing from an earlier build is used."""
    env = {**env, "IMAGEKIT_CACHE_DIR": str(cache)}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    return build_json(imagekit("build", pipeline, "--tag", tag, "--backend", backend, "--base", BASE_IMAGE,
                                   "--no-cache", "--output", "json", env=env))


def remove(backend: str, tag: str) -> None:
    if backend == "buildah":
        subprocess.run(["buildah", "rmi", "-f", tag], capture_output=True)
    else:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


@pytest.mark.slow
def test_two_clean_builds_on_each_backend_give_one_image_id(example_image_docker: BuiltImage,
                                                           build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    reports: dict[tuple[str, int], dict] = {}
    for backend in ("docker", "buildah"):
        for attempt in (1, 2):
            tag = f"localhost/imagekit-test/reproducible-{backend}:{attempt}"
            remove(backend, tag)
            reports[backend, attempt] = clean_build(pipeline, tag, backend, build_env,
                                                    tmp_path / f"cache-{backend}-{attempt}")
    for report in reports.values():  # really clean: no layer imagekit writes came from a cache
        assert not any(layer["cached"] for layer in report["layers"] if layer["kind"] != "base")
    image_ids = {key: report["image_id"] for key, report in reports.items()}
    assert len(set(image_ids.values())) == 1, image_ids
    buildah = [reports["buildah", attempt]["manifest_digest"] for attempt in (1, 2)]
    assert buildah[0] and buildah[0] == buildah[1]
    assert reports["docker", 1]["labels"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    # The same layers as the session's image of the same pipeline (built with its caches).
    ours = [(layer["name"], layer["digest"]) for layer in reports["docker", 1]["layers"]]
    session = [(layer["name"], layer["digest"]) for layer in example_image_docker.layers]
    assert ours == session
    for key in reports:
        remove(key[0], f"localhost/imagekit-test/reproducible-{key[0]}:{key[1]}")


def test_created_is_the_last_commit_without_source_date_epoch_and_labels_come_from_the_pipeline(
        build_env: dict[str, str], tmp_path: Path, engine_ready: None) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    with open(pipeline / "pipeline.yaml", "a") as spec:  # the two labels pipeline.yaml may give
        spec.write("description: word frequencies, for the tests\nlicenses: MIT OR Apache-2.0\n")
    git = ["git", "-C", str(pipeline), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pipeline"], check=True,
                   env={"GIT_COMMITTER_DATE": "@1600000000 +0000", "GIT_AUTHOR_DATE": "@1600000000 +0000",
                        "PATH": "/usr/bin:/bin"})
    assert commit_time(pipeline) == 1600000000
    report = build_json(imagekit("build", pipeline, "--tag", "localhost/imagekit-test/reproducible-git:1",
                                     "--base", BASE_IMAGE, "--output", "json", env=build_env))
    labels = report["labels"]
    assert labels["org.opencontainers.image.created"] == "2020-09-13T12:26:40Z"
    assert labels["org.opencontainers.image.description"] == "word frequencies, for the tests"
    assert labels["org.opencontainers.image.licenses"] == "MIT OR Apache-2.0"
    remove("docker", "localhost/imagekit-test/reproducible-git:1")


def test_two_copies_outside_git_build_to_one_image_id_on_both_backends(example_image_docker: BuiltImage,
                                                                       build_env: dict[str, str], tmp_path: Path) -> None:
    """No git, no SOURCE_DATE_EPOCH, two directories copied at different times: one image ID (created is a fixed
    time, and no label holds a path)."""
    import time

    first = copy_pipeline(tmp_path / "a" / "wordfreq")
    time.sleep(1.1)
    second = copy_pipeline(tmp_path / "elsewhere" / "copy" / "wordfreq")
    ids = set()
    env = {key: value for key, value in build_env.items() if key != "SOURCE_DATE_EPOCH"}
    for backend in ("docker", "buildah"):
        for index, pipeline in enumerate((first, second)):
            tag = f"localhost/imagekit-test/gitless:{backend}-{index}"
            report = clean_build(pipeline, tag, backend, env, tmp_path / f"cache-{backend}-{index}", epoch=None)
            ids.add(report["image_id"])
            assert commit_time(pipeline) is None
            assert not [value for value in report["labels"].values() if str(tmp_path) in value]
            assert report["labels"]["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"
            remove(backend, tag)
    assert len(ids) == 1, ids
