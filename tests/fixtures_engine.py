"""Session fixtures for the build path: a real engine, a local registry, the base image, and
the example pipeline built ONCE per test run with each backend.

Star-imported by conftest.py. Everything here is real: dockerd, buildah, docker-registry on
127.0.0.1:5000 and a base image made by mmdebstrap, all started/built idempotently by
scripts/bootstrap.sh (fast when already there). Built images run through testcontainers.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import RunResult, imagekit
from imagekit.build.engines import BACKENDS, get_backend
from imagekit_core import contract

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

ENGINE_REPO = Path(__file__).resolve().parents[1]
WORDFREQ = ENGINE_REPO / "pipelines" / "wordfreq"
BASE_IMAGE = os.environ.get("IMAGEKIT_BASE_IMAGE", "imagekit/debian-python:bookworm")
REGISTRY = os.environ.get("IMAGEKIT_REGISTRY", "127.0.0.1:5000")
RUNTIME_UID = contract.RUNTIME_UID  # the image's non-root user
SMALL_CORPUS = "128Ki"  # WORDFREQ_BYTES per shard in tests: seconds, not minutes
# SOURCE_DATE_EPOCH for the buildah example image (reproducible digests).
EPOCH = "1700000000"
# Placed in the user's pip configuration and environment while the examples are built;
# must then appear in no layer, config or history entry.
SECRET_TOKEN = "imksecret" + secrets.token_hex(12)


def build_json(result: RunResult) -> dict[str, Any]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    return json.loads(result.stdout)


def build_test_image(pipeline: Path, name: str, build_env: Mapping[str, str | None]) -> str:
    """A test pipeline built with Docker on the base image, as {REGISTRY}/imagekit-test/NAME:docker (its tag)."""
    tag = f"{REGISTRY}/imagekit-test/{name}:docker"
    build_json(imagekit("build", pipeline, "--tag", tag, "--backend", "docker", "--base", BASE_IMAGE,
                        "--output", "json", env=build_env))
    return tag


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    backend: str
    pipeline: Path
    report: dict[str, Any]  # `imagekit build --output json`

    @property
    def layers(self) -> list[dict[str, Any]]:
        return self.report["layers"]


def _untagged_images() -> dict[str, set[str]]:
    """The IDs of the untagged images each backend's engine holds now."""
    return {name: get_backend(name).untagged() for name in BACKENDS}


def _remove_untagged_since(before: dict[str, set[str]]) -> None:
    """Remove the images this run left untagged (a rebuild moves a tag off the image it named), so
    the engines hold no more images after a run than before it: buildah reads its whole image list
    on every call, and a few hundred leftover images make each call (and so every build) slower.
    Images that were untagged before the run are someone else's and stay."""
    for name, untagged in _untagged_images().items():
        get_backend(name).remove(sorted(untagged - before[name]))


@pytest.fixture(scope="session")
def engine_ready() -> Iterator[None]:
    """dockerd, buildah, the registry and the base image, via the same script a user runs; at the end
    of the run, the images it left untagged are removed."""
    script = ENGINE_REPO / "scripts" / "bootstrap.sh"
    result = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"scripts/bootstrap.sh exited {result.returncode}:\n{result.stderr[-3000:]}")
    before = _untagged_images()
    yield
    _remove_untagged_since(before)


@pytest.fixture(scope="session")
def docker_client(engine_ready: None) -> Any:
    from imagekit_core.engine import connect

    return connect(timeout=300)


@pytest.fixture(scope="session")
def registry_address(engine_ready: None) -> str:
    return REGISTRY


@pytest.fixture(scope="session")
def base_image_tag(engine_ready: None) -> str:
    return BASE_IMAGE


def _pip_extra_index_urls() -> list[str]:
    """The extra index URLs the user's pip configuration already has (kept, so resolution still works)."""
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    urls: list[str] = []
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("extra-index-url"):
            urls += value.strip().strip("'\"").split()
    return urls


@pytest.fixture(scope="session")
def build_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Environment for `imagekit build` in tests: a fresh cache (so wheels really get resolved under
    it) and a secret token in the pip configuration and the environment, as a CI's index credentials."""
    root = tmp_path_factory.mktemp("imagekit-build-env")
    pip_conf = root / "pip.conf"
    # A token-bearing index nobody listens on (connection refused at once), besides the real ones.
    token_index = f"http://__token__:{SECRET_TOKEN}@127.0.0.1:9/simple"
    pip_conf.write_text(f"[global]\ntimeout = 3\nretries = 0\n[imagekit-test]\ntoken = {SECRET_TOKEN}\n")
    env: dict[str, str | None] = dict(os.environ)
    env.update({
        "IMAGEKIT_CACHE_DIR": str(root / "cache"),
        "PIP_CONFIG_FILE": str(pip_conf),
        "PIP_EXTRA_INDEX_URL": " ".join([*_pip_extra_index_urls(), token_index]),
        "PIP_RETRIES": "0",
        "IMAGEKIT_TEST_TOKEN": SECRET_TOKEN,
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    })
    env["SOURCE_DATE_EPOCH"] = None  # unset: the docker example is built without it
    return env


ARM64_BASE = "imagekit/debian-python:bookworm-arm64"


@pytest.fixture(scope="session")
def arm64_base(engine_ready: None) -> str:
    """The offline base made for linux/arm64 (mmdebstrap under qemu: minutes the first time on a machine, its
    root filesystem then cached; an image of the same recipe under the tag is kept)."""
    made = imagekit("base", "--platform", "linux/arm64", "--tag", ARM64_BASE, timeout=3600)
    assert made.returncode == 0, made.stderr
    return ARM64_BASE


def copy_pipeline(destination: Path, source: Path = WORDFREQ) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return destination


@pytest.fixture(scope="session")
def example_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of pipelines/wordfreq: tests that change a step change their own copy of this."""
    return copy_pipeline(tmp_path_factory.mktemp("example") / "wordfreq")


def _build_example(backend: str, pipeline: Path, env: dict[str, str], tag: str,
                   extra_env: dict[str, str] | None = None) -> BuiltImage:
    result = imagekit("build", pipeline, "--tag", tag, "--backend", backend, "--base", BASE_IMAGE,
                          "--output", "json", env={**env, **(extra_env or {})})
    return BuiltImage(tag=tag, backend=backend, pipeline=pipeline, report=build_json(result))


@pytest.fixture(scope="session")
def example_image_docker(engine_ready: None, build_env: dict[str, str], example_pipeline: Path) -> BuiltImage:
    """pipelines/wordfreq built once with the Docker backend."""
    return _build_example("docker", example_pipeline, build_env, f"{REGISTRY}/imagekit-test/wordfreq:docker")


@pytest.fixture(scope="session")
def example_image_buildah(engine_ready: None, build_env: dict[str, str], example_pipeline: Path) -> BuiltImage:
    """pipelines/wordfreq built once with the buildah backend, with SOURCE_DATE_EPOCH."""
    return _build_example("buildah", example_pipeline, build_env, f"{REGISTRY}/imagekit-test/wordfreq:buildah",
                          {"SOURCE_DATE_EPOCH": EPOCH})


@pytest.fixture(scope="session")
def example_image_buildah_in_docker(example_image_buildah: BuiltImage, docker_client: Any) -> str:
    """The buildah-built example, pushed to the local registry and pulled into Docker (to run it)."""
    result = imagekit("push", example_image_buildah.tag, "--backend", "buildah", "--output", "json")
    pushed = build_json(result)
    docker_client.images.pull(pushed["reference"])
    return pushed["reference"]


@dataclass
class PipelineRun:
    exit_code: int
    logs: str
    results: Path


def run_pipeline_image(image: str, results: Path, *args: str, shard_index: int = 0, shard_count: int = 2,
                       timeout: float = 180, wordfreq: bool = True) -> PipelineRun:
    """Run an image's pipeline in a container (testcontainers): results bind-mounted from the host,
    /dev/shm a tmpfs as large as the example's `shm: 1Gi` (the runtime refuses to start in less; tmpfs takes
    memory only as it is written); wordfreq's with a small corpus (its param: another pipeline has none)."""
    from testcontainers.core.container import DockerContainer

    results.mkdir(parents=True, exist_ok=True)
    results.chmod(0o777)  # the image's user (uid 10001) writes here
    command = ["--results", "/results", "--shard-index", str(shard_index), "--shard-count", str(shard_count),
               *(["--param", f"WORDFREQ_BYTES={SMALL_CORPUS}"] if wordfreq else []), *args]
    container = DockerContainer(image, shm_size="1g").with_volume_mapping(str(results), "/results", "rw")
    container = container.with_command(command)
    container.start()
    try:
        wrapped = container.get_wrapped_container()
        status = wrapped.wait(timeout=timeout)
        logs = wrapped.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.stop()
    return PipelineRun(exit_code=int(status["StatusCode"]), logs=logs, results=results)


def expected_wordfreq(pipeline: Path, tmp: Path, shard_index: int = 0,
                      corpus_bytes: str = SMALL_CORPUS) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """The right answer, computed on the host without the image: the generator is plain Python,
    counting is a Counter. Returns (counts sorted as `count` writes them, corpus line/word/byte stats)."""
    corpus = tmp / f"corpus-{shard_index}"
    env = {**os.environ, "WORDFREQ_BYTES": corpus_bytes, "IMAGEKIT_SHARD_INDEX": str(shard_index),
           "IMAGEKIT_OUT_CORPUS": str(corpus)}
    subprocess.run([sys.executable, "main.py"], cwd=pipeline / "steps" / "generate", env=env, check=True)
    data = corpus.read_bytes()
    words = data.split()
    counter = Counter(words)
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    stats = {"lines": data.count(b"\n"), "words": len(words), "bytes": len(data)}
    return [(word.decode(), count) for word, count in ordered], stats


def assert_right_wordfreq(run: PipelineRun, pipeline: Path, tmp_path: Path, shard_index: int,
                          owner: int = RUNTIME_UID) -> None:
    assert run.exit_code == 0, run.logs[-4000:]
    expected_counts, stats = expected_wordfreq(pipeline, tmp_path, shard_index)
    lines = (run.results / "counts").read_text().splitlines()
    counts = [(word, int(count)) for word, count in (line.split("\t") for line in lines)]
    assert counts == expected_counts
    report = json.loads((run.results / "report").read_text())
    assert report["shard"] == shard_index
    assert {key: report[key] for key in ("lines", "words", "bytes")} == stats
    assert report["distinct_words"] == len(expected_counts)
    assert report["counted_words"] == stats["words"]
    assert report["top10"] == [[word, count] for word, count in expected_counts[:10]]
    # Written by the image's non-root user (or whoever the run was started as: owner).
    for name in ("counts", "report"):
        assert (run.results / name).stat().st_uid == owner
