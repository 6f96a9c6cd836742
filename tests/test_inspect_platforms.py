"""`imagekit inspect` and `imagekit sbom` of a multi-platform reference in the real registry: two tiny images (one
per platform) pushed with RegistryClient and joined by push_index, as `build --platform A,B --push` does, read back
by the CLI as a user runs it: each platform's image, the one --platform names, and a platform missing is exit 2."""
from __future__ import annotations

import uuid
from pathlib import Path

from conftest import imagekit
from fixtures_engine import build_json
from imagekit_core.platforms import Platform, platform_tag
from unit.tiny_images import count_version, digest_of, push_tiny_index, tiny_image

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")


def test_inspect_and_sbom_show_each_platform_of_an_index(registry_address: str, tmp_path: Path) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    pushed = push_tiny_index(registry_address, "imagekit-test/tiny-index", tag, (AMD64, ARM64), tmp_path)
    reference = f"{registry_address}/imagekit-test/tiny-index:{tag}"

    data = build_json(imagekit("inspect", reference, "-o", "json"))  # auto: no engine holds it, the registry does
    assert data["source"] == "registry" and data["digest"] == pushed.digest
    assert {name: image["digest"] for name, image in data["platforms"].items()} == {
        str(platform): tiny_image(platform).digest for platform in (AMD64, ARM64)}
    assert all([layer["name"] for layer in image["layers"]] == ["runtime", "deps-count"]
               for image in data["platforms"].values())
    text = imagekit("inspect", reference, "--source", "registry")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith(f"{reference} (registry, index {pushed.digest[:19]}): linux/amd64, linux/arm64\n")
    assert [line.split(":")[0] for line in text.stdout.splitlines() if line.startswith("linux/")] == [
        "linux/amd64", "linux/arm64"]

    arm64 = build_json(imagekit("inspect", reference, "--platform", "linux/arm64", "-o", "json"))
    assert arm64["id"] == digest_of(tiny_image(ARM64).config) and "platforms" not in arm64

    every = build_json(imagekit("sbom", reference))
    assert {name: documents["count"]["components"][0]["version"] for name, documents in every.items()} == {
        "linux/amd64": count_version(AMD64), "linux/arm64": count_version(ARM64)}
    one = build_json(imagekit("sbom", reference, "--platform", "linux/arm64", "--step", "count"))
    assert one["components"] == [{"name": "tinypkg", "version": count_version(ARM64)}]

    plain = platform_tag(reference, AMD64)  # amd64's own image, pushed under TAG-amd64
    assert "platforms" not in build_json(imagekit("inspect", plain, "-o", "json"))
    refused = imagekit("inspect", plain, "--platform", "linux/arm64")
    assert refused.returncode == 2 and refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert plain in line and "linux/amd64" in line and "(fix: " in line and "Traceback" not in refused.stderr
    refused = imagekit("sbom", reference, "--platform", "linux/s390x")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
