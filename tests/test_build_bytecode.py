"""Bytecode in the image as users build it: deps and code layers carry .pyc for the image's Python, and
`build --no-bytecode` leaves them out."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, build_json, copy_pipeline

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # two builds of wordfreq

COUNT = "find /opt/imagekit/deps/count /opt/imagekit/pipeline/steps/count -name '*.pyc' | wc -l"


def pyc_files(tag: str) -> int:
    ran = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c", COUNT],
                         capture_output=True, text=True, check=True)
    return int(ran.stdout.strip())


def test_bytecode_ships_by_default_and_no_bytecode_leaves_it_out(engine_ready: None, build_env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    tags = {flag: f"{REGISTRY}/imagekit-test/bytecode:{name}" for flag, name in (("", "with"),
                                                                                 ("--no-bytecode", "without"))}
    for flag, tag in tags.items():
        build_json(imagekit("build", pipeline, "--base", BASE_IMAGE, "--tag", tag, *filter(None, [flag]),
                            "-o", "json", env=build_env, timeout=900))
    assert pyc_files(tags[""]) > 100  # numpy's modules and the step's own
    assert pyc_files(tags["--no-bytecode"]) == 0
