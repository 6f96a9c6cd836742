"""One pipeline built for another platform: wordfreq on the arm64 base resolves aarch64 wheels into a lock of
its own (the amd64 lock untouched), and the image, run here under qemu, gives the answer the amd64 reference
gives."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import (
    REGISTRY,
    SMALL_CORPUS,
    PipelineRun,
    assert_right_wordfreq,
    build_json,
    copy_pipeline,
    run_pipeline_image,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_wordfreq_built_for_arm64_runs_under_emulation_with_amd64s_answer(
        arm64_base: str, build_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    amd64_lock = (pipeline / "steps" / "count" / "requirements.lock").read_text()
    tag = f"{REGISTRY}/imagekit-test/wordfreq-arm64:test"
    built = build_json(imagekit("build", pipeline, "--base", arm64_base, "--tag", tag, "-o", "json",
                                env=build_env, timeout=1200))
    assert built["python"].startswith("CPython 3.11 aarch64")
    for step in ("count", "tokenize"):
        arm64_lock = (pipeline / "steps" / step / "requirements.linux-arm64.lock").read_text()
        assert "aarch64" in arm64_lock.splitlines()[0] and "manylinux" not in arm64_lock.splitlines()[0]
    assert (pipeline / "steps" / "count" / "requirements.lock").read_text() == amd64_lock
    architecture = subprocess.run(["docker", "image", "inspect", "--format", "{{.Architecture}}", tag],
                                  capture_output=True, text=True, check=True).stdout.strip()
    assert architecture == "arm64"
    run = run_pipeline_image(tag, tmp_path / "results", shard_index=0, timeout=900)
    assert_right_wordfreq(run, pipeline, tmp_path, 0)


def test_both_platforms_push_as_one_reference_an_oci_index(arm64_base: str, build_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    tag = f"{REGISTRY}/imagekit-test/wordfreq-multi:t{uuid.uuid4().hex[:8]}"
    result = imagekit("build", pipeline, "--base", "imagekit/debian-python:bookworm", "--platform",
                      "linux/amd64,linux/arm64", "--platform-base", f"linux/arm64={arm64_base}", "--tag", tag,
                      "--push", "-o", "json", env=build_env, timeout=1200)
    built = build_json(result)
    [reference] = built["references"]
    assert reference.startswith(f"{tag}@sha256:")
    index = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{tag}"],
                                      capture_output=True, text=True, check=True).stdout)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [entry["platform"] for entry in index["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                                   {"architecture": "arm64", "os": "linux"}]
    for architecture in ("amd64", "arm64"):  # skopeo picks each platform's image from the one reference
        seen = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--override-arch", architecture,
                                          f"docker://{tag}"], capture_output=True, text=True, check=True).stdout)
        assert seen["Architecture"] == architecture
    layers = {platform: {layer["name"]: layer["digest"] for layer in report["layers"]}
              for platform, report in built["platforms"].items()}
    amd64, arm64 = layers["linux/amd64"], layers["linux/arm64"]
    for name in ("runtime", "pipeline", "code-count", "code-tokenize"):  # pure Python: the same layer
        assert amd64[name] == arm64[name], name
    for name in ("base-0", "deps-count", "deps-tokenize"):  # built for each platform
        assert amd64[name] != arm64[name], name
    # inspect and sbom of the one reference show each platform's image, and --platform the one it names.
    inspected = build_json(imagekit("inspect", tag, "--source", "registry", "-o", "json"))
    assert inspected["digest"] == reference.split("@", 1)[1]
    assert {platform: {layer["name"]: layer["digest"] for layer in image["layers"]}
            for platform, image in inspected["platforms"].items()} == layers
    picked = build_json(imagekit("inspect", tag, "--source", "registry", "--platform", "linux/arm64", "-o", "json"))
    assert picked["id"] == inspected["platforms"]["linux/arm64"]["id"] != inspected["platforms"]["linux/amd64"]["id"]
    sboms = build_json(imagekit("sbom", tag, "--source", "registry"))
    assert {platform: set(documents) for platform, documents in sboms.items()} == {
        "linux/amd64": {"runtime", "tokenize", "count"}, "linux/arm64": {"runtime", "tokenize", "count"}}
    numpy = {platform: next(c for c in documents["count"]["components"] if c["name"] == "numpy")["hashes"][0]["content"]
             for platform, documents in sboms.items()}
    assert numpy["linux/amd64"] != numpy["linux/arm64"]  # each platform's own wheel
    one = build_json(imagekit("sbom", tag, "--source", "registry", "--platform", "linux/arm64", "--step", "count"))
    assert one == sboms["linux/arm64"]["count"]


def test_pod_up_platform_runs_the_arm64_image_of_a_pushed_index_under_emulation(
        arm64_base: str, build_env: dict[str, str], pod_sets: Any, docker_client: Any, tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    tag = f"{REGISTRY}/imagekit-test/wordfreq-pods:t{uuid.uuid4().hex[:8]}"
    built = build_json(imagekit("build", pipeline, "--base", "imagekit/debian-python:bookworm", "--platform",
                                "linux/amd64,linux/arm64", "--platform-base", f"linux/arm64={arm64_base}", "--tag", tag,
                                "--push", "-o", "json", env=build_env, timeout=1200))
    [index_reference] = built["references"]  # TAG@sha256:<index>, as a rendering pins it
    index = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{tag}"],
                                      capture_output=True, text=True, check=True).stdout)
    [arm64_digest] = [entry["digest"] for entry in index["manifests"] if entry["platform"]["architecture"] == "arm64"]
    # amd64's own image in the registry has no arm64 one: one line, exit 2, before any pod starts.
    amd64_only = pod_sets(pipeline, f"{tag}-amd64", 1)
    refused = imagekit("pod", "up", amd64_only.rendered, "--state-dir", amd64_only.state_dir, "--platform",
                       "linux/arm64")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert f"{tag}-amd64 is one image, of linux/amd64, not linux/arm64 (fix: " in refused.stderr
    assert docker_client.containers.list(all=True, filters={"name": amd64_only.name}) == []
    pods = pod_sets(pipeline, index_reference, 1)
    report = pods.up("--platform", "linux/arm64", "--param", f"WORDFREQ_BYTES={SMALL_CORPUS}")
    assert [p["action"] for p in report["pods"]] == ["created"]
    waited = imagekit("pod", "status", "--state-dir", pods.state_dir, "--wait", "--timeout", "1200", "-o", "json",
                      timeout=1300)
    logs = imagekit("pod", "logs", "0", "--state-dir", pods.state_dir).stdout
    assert waited.returncode == 0, f"{waited.stdout[-2000:]}\n{logs[-3000:]}"
    [status] = waited.summary["pods"]
    assert status["phase"] == "Complete" and status["restarts"] == 0
    # The pipeline container and the sandbox ran the index's arm64 image, pulled by its digest.
    for name in ("pipeline", "sandbox"):
        container = docker_client.containers.get(pods.container(0, name)).attrs
        assert container["Config"]["Image"] == f"{tag.rsplit(':', 1)[0]}@{arm64_digest}", name
        assert docker_client.images.get(container["Image"]).attrs["Architecture"] == "arm64", name
    run = PipelineRun(exit_code=0, logs=logs, results=Path(status["results"]))
    assert_right_wordfreq(run, pipeline, tmp_path, 0)
