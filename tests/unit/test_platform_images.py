"""`pod up --platform P` (in-process, a fake engine and registry): which image each rendered reference becomes,
the refusals naming the image, its platform and the fix, and `run --platform` accepting only this machine's."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imagekit.publish import index_read
from imagekit.publish.index_read import platform_reference
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, parse_platform
from imagekit_deploy.emulator.apply import PodOptions, _check_options
from imagekit_deploy.emulator.platform_images import for_platform, platform_image
from imagekit_deploy.emulator.state import SetState, StateDir

ARM = parse_platform("linux/arm64")
AMD = parse_platform("linux/amd64")
REF = "127.0.0.1:5000/wf:v1"
ARM_DIGEST = "sha256:" + "a" * 64
AMD_DIGEST = "sha256:" + "b" * 64
INDEX_DIGEST = "sha256:" + "c" * 64


class FakeEngine:
    """The engine's images by reference (their platform), and what a pull by digest would bring."""

    def __init__(self, held: dict[str, str], remote: dict[str, str] | None = None) -> None:
        self.held = dict(held)
        self.remote = remote or {}
        self.pulls: list[tuple[str, str]] = []
        self.asked: list[str] = []

    def platform_of(self, ref: str) -> str | None:
        self.asked.append(ref)
        return self.held.get(ref)

    def pull(self, ref: str, platform: str) -> None:
        self.pulls.append((ref, platform))
        self.held[ref] = self.remote[ref]


def registry_of(answers: dict[str, str]) -> Any:
    asked: list[tuple[str, Platform]] = []

    def lookup(ref: str, platform: Platform) -> str:
        asked.append((ref, platform))
        return answers[ref]

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def test_an_image_of_the_platform_already_is_kept() -> None:
    engine = FakeEngine({REF: "linux/arm64"})
    registry = registry_of({})
    assert platform_image(REF, ARM, engine, registry) == REF
    assert engine.pulls == [] and registry.asked == []


def test_the_engines_arch_tag_of_a_multi_platform_build_is_used() -> None:
    engine = FakeEngine({REF: "linux/amd64", f"{REF}-arm64": "linux/arm64"})
    registry = registry_of({})
    assert platform_image(REF, ARM, engine, registry) == f"{REF}-arm64"
    assert registry.asked == []


def test_a_registry_index_gives_the_platforms_image_pulled_by_digest_leaving_the_tag() -> None:
    chosen = f"127.0.0.1:5000/wf@{ARM_DIGEST}"
    engine = FakeEngine({REF: "linux/amd64"}, remote={chosen: "linux/arm64"})
    registry = registry_of({REF: chosen})
    assert platform_image(REF, ARM, engine, registry) == chosen
    assert engine.pulls == [(chosen, "linux/arm64")]
    assert engine.held[REF] == "linux/amd64"  # the tag still names what it named
    assert registry.asked == [(REF, ARM)]


def test_a_digest_pinned_reference_goes_to_the_registry_not_to_an_arch_tag() -> None:
    pinned = f"{REF}@{INDEX_DIGEST}"
    chosen = f"127.0.0.1:5000/wf@{ARM_DIGEST}"
    engine = FakeEngine({pinned: "linux/amd64", f"{REF}-arm64": "linux/arm64"}, remote={chosen: "linux/arm64"})
    assert platform_image(pinned, ARM, engine, registry_of({pinned: chosen})) == chosen


def test_a_registry_image_of_another_platform_is_refused_naming_it() -> None:
    chosen = f"127.0.0.1:5000/wf@{AMD_DIGEST}"
    engine = FakeEngine({}, remote={chosen: "linux/amd64"})
    with pytest.raises(UsageError) as refused:
        platform_image(REF, ARM, engine, registry_of({REF: chosen}))
    message = str(refused.value)
    assert chosen in message and "is linux/amd64, not linux/arm64" in message and "fix: " in message
    assert "\n" not in message


def test_a_local_image_of_another_platform_without_an_arch_tag_is_refused() -> None:
    engine = FakeEngine({"wf:v1": "linux/amd64"})
    with pytest.raises(UsageError) as refused:
        platform_image("wf:v1", ARM, engine, registry_of({}))
    message = str(refused.value)
    assert "image wf:v1 is linux/amd64, not linux/arm64" in message
    assert "no wf:v1-arm64" in message and "--platform-base linux/arm64=BASE" in message


def test_an_arch_tag_of_the_wrong_platform_is_named() -> None:
    engine = FakeEngine({"wf:v1": "linux/amd64", "wf:v1-arm64": "linux/amd64"})
    with pytest.raises(UsageError, match="wf:v1-arm64 is linux/amd64"):
        platform_image("wf:v1", ARM, engine, registry_of({}))


def test_an_image_nowhere_is_refused() -> None:
    with pytest.raises(UsageError, match="image wf:v1 is not in the Docker engine and names no registry"):
        platform_image("wf:v1", ARM, FakeEngine({}), registry_of({}))


def test_every_container_of_the_template_runs_its_platforms_image_resolved_once() -> None:
    workload = {"spec": {"template": {"spec": {
        "initContainers": [{"name": "prepare", "image": REF}, {"name": "other", "image": "busybox:1"}],
        "containers": [{"name": "pipeline", "image": REF}]}}}}
    engine = FakeEngine({REF: "linux/amd64", f"{REF}-arm64": "linux/arm64", "busybox:1": "linux/arm64"})
    changed = for_platform(workload, ARM, engine, None)
    pod = changed["spec"]["template"]["spec"]
    assert [c["image"] for c in pod["initContainers"]] == [f"{REF}-arm64", "busybox:1"]
    assert pod["containers"][0]["image"] == f"{REF}-arm64"
    assert engine.asked.count(REF) == 1
    assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == REF  # the rendering is untouched


def running_set(platform: str | None) -> SetState:
    return SetState(rendered="r", name="wf", namespace="default", workload={}, ordinals=[0], platform=platform)


def test_a_running_sets_platform_is_kept_and_another_refused(tmp_path: Path) -> None:
    class Named:
        name = "wf"

    where = StateDir(tmp_path)
    kept = _check_options(where, running_set("linux/arm64"), Named(), PodOptions())  # type: ignore[arg-type]
    assert kept.platform == "linux/arm64"
    with pytest.raises(UsageError, match="other --platform values"):
        _check_options(where, running_set("linux/arm64"), Named(), PodOptions(platform="linux/amd64"))  # type: ignore[arg-type]


class FakeClient:
    """A registry holding manifests by tag or digest, and each image's config by its digest."""

    manifests: dict[str, dict[str, Any]] = {}

    def __init__(self, host: str) -> None:
        self.host = host

    def manifest_and_digest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        manifest = self.manifests[reference]
        return manifest, manifest.get("digest", reference)

    def config(self, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
        return {"os": "linux", "architecture": manifest["arch"]}


def test_the_registry_lookup_picks_the_platforms_entry_of_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"digest": AMD_DIGEST, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": ARM_DIGEST, "platform": {"os": "linux", "architecture": "arm64"}}]}
    images = {AMD_DIGEST: {"config": {}, "layers": [], "arch": "amd64"},
              ARM_DIGEST: {"config": {}, "layers": [], "arch": "arm64"}}
    single = {"config": {}, "layers": [], "arch": "amd64", "digest": AMD_DIGEST}
    monkeypatch.setattr(FakeClient, "manifests", {"v1": index, "amd-only": {"manifests": index["manifests"][:1]},
                                                  "single": single, **images})
    monkeypatch.setattr(index_read, "RegistryClient", FakeClient)
    assert platform_reference(REF, ARM) == f"127.0.0.1:5000/wf@{ARM_DIGEST}"
    assert platform_reference(REF, AMD) == f"127.0.0.1:5000/wf@{AMD_DIGEST}"
    assert platform_reference("127.0.0.1:5000/wf:single", AMD) == f"127.0.0.1:5000/wf@{AMD_DIGEST}"
    with pytest.raises(UsageError, match="is one image, of linux/amd64, not linux/arm64"):
        platform_reference("127.0.0.1:5000/wf:single", ARM)
    with pytest.raises(UsageError, match="has no linux/arm64 image: its index holds linux/amd64"):
        platform_reference("127.0.0.1:5000/wf:amd-only", ARM)
