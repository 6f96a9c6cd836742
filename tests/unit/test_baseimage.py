"""A rebuild starts from the base image the reference named last time, and loads nothing until the engine agrees."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from imagekit.build.assembly import BaseImage
from imagekit.build.backend import Backend, ImageInfo, PushReport
from imagekit.build.baseimage import BaseMoved, look_up_base, stored_base
from imagekit.build.events import NO_EVENTS
from imagekit_core import contract

OLD, NEW = "sha256:" + "0a" * 32, "sha256:" + "0b" * 32


class FakeEngine(Backend):
    """An engine holding one tag; counts what it is asked."""

    name = "fake"
    events = NO_EVENTS

    def __init__(self, tag_names: str) -> None:
        self.tag_names = tag_names
        self.asked: list[str] = []

    def check(self) -> None: ...

    def image_id(self, ref: str) -> str | None:
        return self.tag_names

    def ensure_image(self, ref: str) -> str:
        self.asked.append(f"ensure {ref}")
        return self.tag_names

    def inspect(self, ref: str) -> ImageInfo:
        self.asked.append(f"inspect {ref}")
        return ImageInfo(id=ref, diff_ids=("sha256:" + "1c" * 32,), labels={}, layer_sizes=(123,))

    def base_image(self, image: ImageInfo) -> BaseImage:
        self.asked.append(f"config {image.id}")
        return BaseImage(id=image.id, config={"rootfs": {"diff_ids": list(image.diff_ids)}, "config": {"Env": ["A=1"]}},
                         layer_sizes=(123,))

    def run_python(self, image: str, script: str) -> str: raise NotImplementedError
    def build(self, request: Any) -> str: raise NotImplementedError
    def load(self, image: Any, tag: str, work: Path, held: int) -> ImageInfo: raise NotImplementedError
    def read_file(self, ref: str, path: str) -> bytes | None: raise NotImplementedError
    def tag(self, image: str, ref: str) -> None: raise NotImplementedError
    def name_platforms(self, ref: str, images: dict[Any, str]) -> str: raise NotImplementedError
    def listed_platforms(self, ref: str) -> tuple[Any, ...]: raise NotImplementedError
    def remove(self, refs: list[str]) -> None: raise NotImplementedError
    def untagged(self) -> set[str]: raise NotImplementedError

    def push(self, ref: str, destination: str, *, insecure: bool, authfile: Path | None) -> PushReport:
        raise NotImplementedError


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / "cache"))


def test_a_first_build_asks_the_engine_then_later_builds_start_from_what_it_said() -> None:
    engine = FakeEngine(OLD)
    with ThreadPoolExecutor(2) as pool:
        first = look_up_base(engine, "base:1", pool)
        assert first.id == OLD and first.asked is None and engine.asked == ["ensure base:1"]
        assert stored_base(engine, first.id).config["config"] == {"Env": ["A=1"]}
        first.confirm()

        engine.asked.clear()
        second = look_up_base(engine, "base:1", pool)
        assert second.id == OLD and second.asked is not None
        # the config comes from the cache by ID: the engine is only asked, on the side, what the tag names
        assert stored_base(engine, second.id) == BaseImage(OLD, {"rootfs": {"diff_ids": ["sha256:" + "1c" * 32]},
                                                                 "config": {"Env": ["A=1"]}}, (123,))
        second.confirm()
        assert engine.asked == ["ensure base:1"]


def test_a_tag_moved_since_the_last_build_stops_the_build_before_it_loads() -> None:
    engine = FakeEngine(OLD)
    with ThreadPoolExecutor(2) as pool:
        first = look_up_base(engine, "base:1", pool)
        stored_base(engine, first.id)
        first.confirm()
        engine.tag_names = NEW
        stale = look_up_base(engine, "base:1", pool)
        assert stale.id == OLD
        with pytest.raises(BaseMoved, match=NEW):
            stale.confirm()
        # starting over without memory takes the engine's answer, and remembers it
        fresh = look_up_base(engine, "base:1", pool, remembered=False)
        assert fresh.id == NEW and fresh.asked is None
        stored_base(engine, fresh.id)
        fresh.confirm()
        assert look_up_base(engine, "base:1", pool).id == NEW


def test_nothing_is_remembered_for_an_image_whose_config_is_not_stored() -> None:
    engine = FakeEngine(OLD)
    with ThreadPoolExecutor(2) as pool:
        look_up_base(engine, "base:1", pool).confirm()  # remembered, but its config was never stored
        assert look_up_base(engine, "base:1", pool).asked is None


def test_a_build_whose_base_moved_starts_over_from_the_engines_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagekit.build import builder

    calls: list[bool] = []

    def build(spec: Any, backend: Any, options: Any, *, remembered_base: bool) -> Any:
        calls.append(remembered_base)
        if remembered_base:
            raise BaseMoved("base:1 now names another image")
        return "built"

    monkeypatch.setattr(builder, "_build_image", build)
    no_spec: Any = None
    built: Any = builder.build_image(no_spec, FakeEngine(OLD), builder.BuildOptions(tag="t"))
    assert built == "built"
    assert calls == [True, False]
    calls.clear()
    builder.build_image(no_spec, FakeEngine(OLD), builder.BuildOptions(tag="t", no_cache=True))
    assert calls == [False]  # --no-cache asks the engine
