"""One pipeline built for another platform: wordfreq on the arm64 base resolves aarch64 wheels into a lock of
its own (the amd64 lock untouched), and the image, run here under qemu, gives the answer the amd64 reference
gives."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import REGISTRY, assert_right_wordfreq, build_json, copy_pipeline, run_pipeline_image

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
