"""`imagekit lock PIPELINE`: each step's requirements.lock, for the base image's Python and platform."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, build_json, copy_pipeline

pytestmark = pytest.mark.docker


@pytest.mark.slow  # 4 s or more
def test_lock_writes_checks_and_refreshes_each_steps_lock(engine_ready: None, build_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    pipeline = copy_pipeline(tmp_path / "wordfreq")
    committed = {step: (pipeline / "steps" / step / "requirements.lock").read_text() for step in ("tokenize", "count")}
    for step in committed:
        (pipeline / "steps" / step / "requirements.lock").unlink()
    check = imagekit("lock", pipeline, "--base", BASE_IMAGE, "--check", env=build_env)
    assert check.returncode == 1 and "missing or stale" in check.stdout  # the check is the result: stdout

    report = build_json(imagekit("lock", pipeline, "--base", BASE_IMAGE, "--output", "json", env=build_env))
    assert report["target"] == "cpython-3.11-x86_64-glibc2.36"
    packages = {entry["step"]: entry["packages"] for entry in report["locks"]}
    assert packages == {"tokenize": {"numpy": "1.26.4"}, "count": {"numpy": "2.1.3"}}
    for step, text in committed.items():  # the same lock on this machine as the one committed
        assert (pipeline / "steps" / step / "requirements.lock").read_text() == text
    assert imagekit("lock", pipeline, "--base", BASE_IMAGE, "--check", env=build_env).returncode == 0

    # An included constraints file is part of the lock's input: changing it makes the lock stale.
    requirements = pipeline / "steps" / "count" / "requirements.txt"
    requirements.write_text("-c constraints.txt\n" + requirements.read_text())
    (requirements.parent / "constraints.txt").write_text("numpy<3\n")
    check = json.loads(imagekit("lock", pipeline, "--base", BASE_IMAGE, "--check", "--output", "json",
                                    env=build_env).stdout)
    assert {entry["step"]: entry["current"] for entry in check["locks"]} == {"tokenize": True, "count": False}
