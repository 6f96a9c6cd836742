"""`inspect` and `sbom` of a multi-platform reference, in process: an index (OCI, or a Docker manifest list) read
back from a registry in this process shows each platform's image, `--platform` picks one from it (or from an
engine: TAG, else TAG-<architecture>), and a platform a reference lacks is one line, exit 2."""
from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from imagekit.build.assembly import BaseImage
from imagekit.build.backend import Backend, ImageInfo
from imagekit.cli.main import main
from imagekit.engine_platform import local_image
from imagekit.publish.index_read import PlatformMismatch, index_entries
from imagekit.publish.registry import RegistryClient
from imagekit_core.platforms import Platform

from .tiny_images import (
    DOCKER_LIST,
    MemoryRegistry,
    count_version,
    digest_of,
    docker_list,
    push_image,
    push_tiny_index,
    tiny_image,
)

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


@pytest.fixture
def registry() -> Iterator[MemoryRegistry]:
    memory = MemoryRegistry()
    server = memory.start()
    with contextlib.ExitStack() as stack:
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        yield memory


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_an_index_names_its_images_by_platform_and_sets_the_rest_aside() -> None:
    index = {"manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:a",
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:b",
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:c",
         "platform": {"os": "unknown", "architecture": "unknown"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:d",
         "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:e",
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    entries, skipped = index_entries(index)
    assert entries == {AMD64: "sha256:a", ARM64: "sha256:b"}
    assert skipped == ("unknown/unknown", "linux/arm/v7", "linux/amd64")


def test_inspect_of_an_index_shows_each_platforms_image(registry: MemoryRegistry, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pushed = push_tiny_index(registry.host, "tiny", "multi", (AMD64, ARM64), tmp_path)
    reference = f"{registry.host}/tiny:multi"
    code, out, err = run(capsys, "inspect", reference, "--source", "registry", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {key: data[key] for key in ("reference", "source", "digest")} == {
        "reference": reference, "source": "registry", "digest": pushed.digest}
    assert list(data["platforms"]) == ["linux/amd64", "linux/arm64"]
    for name, image in data["platforms"].items():
        platform = AMD64 if name == "linux/amd64" else ARM64
        built = tiny_image(platform)
        assert image["digest"] == pushed.images[name].digest == built.digest
        assert image["id"] == digest_of(built.config) and image["pipeline"] == "tiny"
        assert [(layer["name"], layer["steps"], layer["size"]) for layer in image["layers"]] == [
            ("runtime", [], len(built.layers[0])), ("deps-count", ["count"], len(built.layers[1]))]
    code, text, err = run(capsys, "inspect", reference, "--source", "registry")
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0] == f"{reference} (registry, index {pushed.digest[:19]}): linux/amd64, linux/arm64"
    headings = [line for line in lines if line.startswith("linux/")]
    assert headings == [f"{name}: {pushed.images[name].digest[:19]} (config {data['platforms'][name]['id'][:19]}): "
                        "pipeline tiny, user 1000" for name in ("linux/amd64", "linux/arm64")]
    assert sum(line.split()[1:3] == ["deps-count", "count"] for line in lines) == 2


def test_platform_picks_one_image_of_an_index(registry: MemoryRegistry, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pushed = push_tiny_index(registry.host, "tiny", "multi", (AMD64, ARM64), tmp_path)
    code, out, err = run(capsys, "inspect", f"{registry.host}/tiny:multi", "--source", "registry",
                         "--platform", "linux/arm64", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert "platforms" not in data
    assert data["digest"] == pushed.images["linux/arm64"].digest and data["id"] == digest_of(tiny_image(ARM64).config)


def test_a_plain_image_reads_as_before_and_refuses_another_platform(registry: MemoryRegistry, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    push_image(registry.host, "tiny", "one", AMD64, tmp_path)
    reference = f"{registry.host}/tiny:one"
    code, out, err = run(capsys, "inspect", reference, "--source", "registry", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert "platforms" not in data and data["digest"] is None and data["id"] == digest_of(tiny_image(AMD64).config)
    code, out, err = run(capsys, "inspect", reference, "--source", "registry", "--platform", "linux/amd64", "-o", "json")
    assert code == 0 and json.loads(out)["id"] == data["id"], err
    line = refused(capsys, "inspect", reference, "--source", "registry", "--platform", "linux/arm64")
    assert reference in line and "linux/amd64" in line and "not linux/arm64" in line and "(fix: " in line
    line = refused(capsys, "sbom", reference, "--source", "registry", "--platform", "linux/arm64")
    assert reference in line and "linux/amd64" in line and "(fix: " in line


def test_a_platform_the_index_lacks_or_imagekit_does_not_know_is_one_line(registry: MemoryRegistry, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    push_tiny_index(registry.host, "tiny", "amd64only", (AMD64,), tmp_path)
    reference = f"{registry.host}/tiny:amd64only"
    line = refused(capsys, "inspect", reference, "--source", "registry", "--platform", "linux/arm64")
    assert reference in line and "has no linux/arm64 image" in line and "holds linux/amd64" in line
    line = refused(capsys, "inspect", reference, "--source", "registry", "--platform", "linux/s390x")
    assert "--platform 'linux/s390x'" in line and "linux/arm64" in line
    line = refused(capsys, "sbom", reference, "--source", "registry", "--platform", "windows/amd64")
    assert "--platform 'windows/amd64'" in line


def test_a_docker_manifest_list_reads_as_an_index(registry: MemoryRegistry, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    images = {platform: tiny_image(platform) for platform in (AMD64, ARM64)}
    for platform in images:
        push_image(registry.host, "tiny", f"list-{platform.architecture}", platform, tmp_path)
    RegistryClient(registry.host).put_manifest("tiny", "list", docker_list(images), DOCKER_LIST)
    code, out, err = run(capsys, "inspect", f"{registry.host}/tiny:list", "--source", "registry", "-o", "json")
    assert code == 0, err
    data = json.loads(out)
    assert {name: image["digest"] for name, image in data["platforms"].items()} == {
        str(platform): image.digest for platform, image in images.items()}


def test_sbom_of_an_index_is_keyed_by_platform(registry: MemoryRegistry, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    push_tiny_index(registry.host, "tiny", "multi", (AMD64, ARM64), tmp_path)
    reference = f"{registry.host}/tiny:multi"
    code, out, err = run(capsys, "sbom", reference, "--source", "registry")
    assert code == 0, err
    every = json.loads(out)
    assert list(every) == ["linux/amd64", "linux/arm64"]
    for name, documents in every.items():
        assert set(documents) == {"runtime", "count"}
        assert documents["runtime"]["metadata"]["component"] == {"name": "imagekit-runtime", "version": name}
        platform = AMD64 if name == "linux/amd64" else ARM64
        assert documents["count"]["components"] == [{"name": "tinypkg", "version": count_version(platform)}]
    code, out, err = run(capsys, "sbom", reference, "--source", "registry", "--step", "count")
    assert code == 0, err
    assert {name: document["components"][0]["version"] for name, document in json.loads(out).items()} == {
        "linux/amd64": "1.0.0", "linux/arm64": "2.0.0"}
    code, out, err = run(capsys, "sbom", reference, "--source", "registry", "--step", "count", "--platform", "linux/arm64")
    assert code == 0, err
    assert json.loads(out)["components"] == [{"name": "tinypkg", "version": "2.0.0"}]


class FakeEngine:
    """An engine holding images by tag, each of a platform: only what engine_platform asks."""

    name = "docker"

    def __init__(self, held: dict[str, Platform]) -> None:
        self.held = held

    def image_id(self, ref: str) -> str | None:
        return f"sha256:{ref}" if ref in self.held else None

    def inspect(self, ref: str) -> ImageInfo:
        return ImageInfo(id=f"sha256:{ref}", diff_ids=(), labels={}, layer_sizes=())

    def base_image(self, image: ImageInfo) -> BaseImage:
        platform = self.held[image.id.removeprefix("sha256:")]
        return BaseImage(id=image.id, config={"os": platform.os, "architecture": platform.architecture}, layer_sizes=())


def test_an_engine_gives_a_platform_the_tag_or_tag_architecture_as_build_names_them() -> None:
    built = cast(Backend, FakeEngine({"x/p:1": AMD64, "x/p:1-arm64": ARM64}))
    assert local_image(built, "x/p:1", None) == "x/p:1"
    assert local_image(built, "x/p:1", AMD64) == "x/p:1"
    assert local_image(built, "x/p:1", ARM64) == "x/p:1-arm64"
    assert local_image(built, "x/q:1", ARM64) is None
    one = cast(Backend, FakeEngine({"x/p:1": AMD64}))
    with pytest.raises(PlatformMismatch) as refused_one:
        local_image(one, "x/p:1", ARM64)
    message = str(refused_one.value)
    assert "x/p:1 is linux/amd64" in message and "no x/p:1-arm64" in message and "(fix: " in message
