"""`platforms:` in pipeline.yaml, and how `build` chooses the platforms and each one's base from it and the
flags; an index's entries read by platform."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from imagekit.cli.build_platforms import base_for, chosen_platforms
from imagekit.publish.index_read import is_index
from imagekit_core.errors import EXIT_BAD_INPUT, SpecError, UsageError
from imagekit_core.platforms import Platform, platform_digests
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.types import PlatformBase

from .graphs import load_graph

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
ARM64_BASE = "imagekit/debian-python:bookworm-arm64"


def pipeline(tmp_path: Path, platforms: Any) -> PipelineSpec:
    return load_graph(tmp_path, {"a": ([], ["x"])}, platforms=platforms)


def refused(tmp_path: Path, platforms: Any) -> str:
    with pytest.raises(SpecError) as raised:
        pipeline(tmp_path, platforms)
    assert raised.value.exit_code == EXIT_BAD_INPUT and "\n" not in str(raised.value)
    assert "pipeline.yaml" in str(raised.value)
    return str(raised.value)


def test_no_platforms_is_a_build_for_the_bases_platform(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, {"a": ([], ["x"])})
    assert spec.platforms == ()
    assert chosen_platforms(spec, "", []) == ((), {})


def test_a_list_names_platforms_in_order(tmp_path: Path) -> None:
    spec = pipeline(tmp_path, ["linux/arm64", "linux/amd64"])
    assert spec.platforms == (PlatformBase(ARM64), PlatformBase(AMD64))
    assert chosen_platforms(spec, "", []) == ((ARM64, AMD64), {})


def test_a_mapping_names_each_platforms_base_an_empty_one_the_pipelines(tmp_path: Path) -> None:
    spec = pipeline(tmp_path, {"linux/amd64": None, "linux/arm64": ARM64_BASE})
    assert spec.platforms == (PlatformBase(AMD64), PlatformBase(ARM64, ARM64_BASE))
    assert chosen_platforms(spec, "", []) == ((AMD64, ARM64), {ARM64: ARM64_BASE})


def test_the_flags_override_the_pipeline(tmp_path: Path) -> None:
    spec = pipeline(tmp_path, {"linux/amd64": None, "linux/arm64": ARM64_BASE})
    assert chosen_platforms(spec, "linux/arm64", ["linux/arm64=other/base:arm64"]) == (
        (ARM64,), {ARM64: "other/base:arm64"})


def test_a_platform_base_without_a_platform_is_refused(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, {"a": ([], ["x"])})
    with pytest.raises(UsageError, match="no platform is built .*fix: add --platform"):
        chosen_platforms(spec, "", [f"linux/arm64={ARM64_BASE}"])


@pytest.mark.parametrize(("platforms", "says"), [
    (["linux/arm64/v8"], r"platforms\[0\].*'linux/arm64/v8' is not a platform .*linux/amd64, linux/arm64"),
    (["linux/amd64", "linux/amd64"], r"platforms\[1\].*named twice"),
    ([], "names no platform"),
    ("linux/amd64", "must be a list of platforms, or a mapping"),
    ({"linux/arm64": 3}, "platforms.linux/arm64.*must be an image reference"),
    ({"linux/arm64": "Not A Ref"}, "'Not A Ref' is not an image reference"),
    ({"windows/amd64": None}, "'windows/amd64' is not a platform"),
])
def test_a_bad_platforms_setting_is_refused_naming_the_field(tmp_path: Path, platforms: Any, says: str) -> None:
    assert re.search(says, refused(tmp_path, platforms))


def test_a_near_miss_of_the_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="platfroms.*platforms"):
        load_graph(tmp_path, {"a": ([], ["x"])}, platfroms=["linux/arm64"])


def test_the_base_named_for_a_platform_comes_first_then_the_flag_then_the_pipelines() -> None:
    assert base_for(ARM64, {ARM64: ARM64_BASE}, "local/base:1", "pipeline/base:1") == ARM64_BASE
    assert base_for(ARM64, {}, "local/base:1", "pipeline/base:1") == "local/base:1"
    assert base_for(AMD64, {ARM64: ARM64_BASE}, None, "pipeline/base:1") == "pipeline/base:1"


def test_a_bad_base_flag_is_refused_before_any_build() -> None:
    with pytest.raises(UsageError, match="--base 'Bad Ref' is not an image reference"):
        base_for(ARM64, {}, "Bad Ref", "pipeline/base:1")


def test_an_index_gives_each_known_platform_its_first_digest() -> None:
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": "sha256:" + "a" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"digest": "sha256:" + "c" * 64, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:" + "d" * 64, "platform": {"os": "unknown", "architecture": "unknown"}},
        {"digest": "sha256:" + "e" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    assert is_index(index) and not is_index({"config": {}, "layers": []})
    assert is_index({"manifests": []})  # a Docker manifest list read without its media type
    assert platform_digests(index) == {AMD64: "sha256:" + "a" * 64, ARM64: "sha256:" + "b" * 64}
