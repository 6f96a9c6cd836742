"""Platforms: one spelling in, the three names out, anything else refused with its fix."""
from __future__ import annotations

import platform

import pytest

from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform, host, parse_platform, parse_platforms, platform_of_machine


def test_each_platform_goes_by_three_names() -> None:
    arm = parse_platform("linux/arm64")
    assert (str(arm), arm.machine, arm.debian) == ("linux/arm64", "aarch64", "arm64")
    amd = parse_platform("linux/amd64")
    assert (str(amd), amd.machine, amd.debian) == ("linux/amd64", "x86_64", "amd64")
    assert platform_of_machine("aarch64") == arm and host().machine == platform.machine()


def test_a_list_keeps_its_order_and_each_platform_once() -> None:
    assert parse_platforms("linux/arm64, linux/amd64,linux/arm64") == (Platform("linux", "arm64"),
                                                                        Platform("linux", "amd64"))


@pytest.mark.parametrize("text", ["linux/arm64/v8", "windows/amd64", "arm64", "linux/riscv64", ""])
def test_anything_else_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match="fix: "):
        parse_platforms(text)
