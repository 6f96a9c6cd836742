"""Push to a real registry (credentials from docker config.json), pull back, run; a second push
after a one-step change uploads only that step's layer."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit, stop
from fixtures_engine import BASE_IMAGE, REGISTRY, BuiltImage, assert_right_wordfreq, build_json, copy_pipeline, run_pipeline_image

pytestmark = pytest.mark.docker

AUTH_REGISTRY = "127.0.0.1:5001"


def test_push_prints_digest_then_pull_back_and_run(docker_client: Any, example_image_docker: BuiltImage,
                                                    tmp_path: Path) -> None:
    result = imagekit("push", example_image_docker.tag)
    assert result.returncode == 0, result.stderr
    reference = result.stdout.strip()
    assert re.fullmatch(re.escape(example_image_docker.tag) + r"@sha256:[0-9a-f]{64}", reference)

    # Pull by digest, as a cluster would, and run what came back.
    repository = example_image_docker.tag.rsplit(":", 1)[0]
    by_digest = f"{repository}@{reference.split('@', 1)[1]}"
    pulled = docker_client.images.pull(by_digest)
    assert pulled.attrs["RootFS"]["Layers"] == [layer["digest"] for layer in example_image_docker.layers]
    run = run_pipeline_image(by_digest, tmp_path / "results", shard_index=0)
    assert_right_wordfreq(run, example_image_docker.pipeline, tmp_path, 0)
    # What the registry holds maps back to the steps.
    remote = build_json(imagekit("inspect", reference, "--source", "registry", "--output", "json"))
    assert [layer["name"] for layer in remote["layers"]] == [layer["name"] for layer in example_image_docker.layers]
    assert remote["steps"]["tokenize"]["size"] > 10 * 1024 * 1024  # compressed numpy


@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_second_push_after_one_step_change_uploads_only_that_step(backend: str, example_image_docker: BuiltImage,
                                                                  build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq", example_image_docker.pipeline)
    tag = f"{REGISTRY}/imagekit-test/push-{backend}:v1"
    build_args = ("--tag", tag, "--backend", backend, "--base", BASE_IMAGE, "--push", "--output", "json")
    first = build_json(imagekit("build", pipeline, *build_args, env=build_env))
    assert first["pushed"]["reference"].startswith(tag + "@sha256:")

    main = pipeline / "steps" / "tokenize" / "main.py"
    # A change never pushed before (the registry outlives test runs).
    main.write_text(main.read_text() + f"# changed {uuid.uuid4()}\n")
    second = build_json(imagekit("build", pipeline, *build_args, env=build_env))

    code_tokenize = next(layer for layer in second["layers"] if layer["name"] == "code-tokenize")
    uploaded = [layer for layer in second["pushed"]["layers"] if layer["uploaded"]]
    assert [layer["diff_id"] for layer in uploaded] == [code_tokenize["digest"]]
    assert second["pushed"]["uploaded_bytes"] < 16 * 1024
    assert second["pushed"]["total_bytes"] > 20 * 1024 * 1024
    assert second["pushed"]["digest"] != first["pushed"]["digest"]


@pytest.fixture(scope="module")
def auth_registry(engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A second docker-registry on 127.0.0.1:5001 that wants a user and password (htpasswd)."""
    with warnings.catch_warnings():  # deprecated, but the one stdlib way to a bcrypt htpasswd line
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    root = tmp_path_factory.mktemp("auth-registry")
    user, password = "ci-bot", "s3cret-" + str(int(time.time()))
    (root / "htpasswd").write_text(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: " + str(root / "data") +
        f"\nhttp:\n  addr: {AUTH_REGISTRY}\nauth:\n  htpasswd:\n    realm: imagekit-test\n"
        f"    path: {root / 'htpasswd'}\n")
    with open(root / "log", "wb") as log:  # the registry keeps its own descriptor
        process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://{AUTH_REGISTRY}/v2/", timeout=1)
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"auth registry did not start: {(root / 'log').read_text()[-2000:]}")
        yield user, password
    finally:
        stop(process)


@pytest.fixture(scope="module")
def tiny_images(engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A one-file image per backend, built through imagekit's backends: pushing the example's
    base layer to an empty registry would only measure gzip."""
    from imagekit.build.backend import BuildRequest
    from imagekit.build.engines import get_backend

    context = tmp_path_factory.mktemp("tiny")
    (context / "hello.txt").write_text(f"hello {uuid.uuid4()}\n")
    (context / "Containerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\nLABEL dev.imagekit.pipeline=tiny\n")
    images = {}
    for backend in ("docker", "buildah"):
        tag = f"localhost/imagekit-test/tiny:{backend}"
        get_backend(backend).build(BuildRequest(context=context, containerfile="Containerfile", tag=tag))
        images[backend] = tag
    return images


@pytest.mark.slow  # 4 s or more
@pytest.mark.parametrize("backend", ["docker", "buildah"])
def test_push_takes_credentials_from_docker_config(backend: str, auth_registry: tuple[str, str],
                                                   tiny_images: dict[str, str], tmp_path: Path) -> None:
    user, password = auth_registry
    destination = f"{AUTH_REGISTRY}/private/tiny:{backend}"
    without = tmp_path / "no-credentials"
    without.mkdir()
    (without / "config.json").write_text("{}")
    env = {**os.environ, "DOCKER_CONFIG": str(without)}
    denied = imagekit("push", destination, "--source", tiny_images[backend], "--backend", backend, env=env)
    assert denied.returncode == 3, denied.stderr  # the environment, not a step
    assert "refused access without credentials" in denied.stderr and "docker login" in denied.stderr

    # Wrong credentials are refused before the engine pushes: presented once, never retried layer by layer.
    wrong = tmp_path / "wrong-credentials"
    wrong.mkdir()
    bad = base64.b64encode(f"{user}:not-{password}".encode()).decode()
    (wrong / "config.json").write_text(json.dumps({"auths": {AUTH_REGISTRY: {"auth": bad}}}))
    refused = imagekit("push", destination, "--source", tiny_images[backend], "--backend", backend,
                       env={**env, "DOCKER_CONFIG": str(wrong)})
    assert refused.returncode == 3 and "refused the credentials" in refused.stderr and "HTTP 401" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2

    config = tmp_path / "docker-config"
    config.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {AUTH_REGISTRY: {"auth": token}}}))
    env["DOCKER_CONFIG"] = str(config)
    pushed = build_json(imagekit("push", destination, "--source", tiny_images[backend], "--backend", backend,
                                     "--output", "json", env=env))
    assert pushed["reference"].startswith(destination + "@sha256:")
    assert pushed["uploaded_layers"] == 1
    # The registry has it: read it back through inspect, with the same credentials.
    inspected = build_json(imagekit("inspect", destination, "--source", "registry", "--output", "json", env=env))
    assert inspected["pipeline"] == "tiny" and len(inspected["layers"]) == 1
