"""The README's first command as a user runs it: scripts/demo.sh sets up, builds the example into an
image, and runs it as two local pods (one shard each), then takes them down."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fixtures_engine import ENGINE_REPO, REGISTRY

pytestmark = pytest.mark.docker


@pytest.mark.slow  # about 7 s (build, push, two pods): outside `-m "not slow"`
def test_demo_builds_the_example_and_runs_it_as_two_pods(engine_ready: None, docker_client: Any,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "OUT": str(out), "WORDFREQ_BYTES": "256Ki",
           "IMAGEKIT_DEMO_IMAGE": f"{REGISTRY}/imagekit-test/demo:latest"}
    result = subprocess.run(["sh", "scripts/demo.sh"], cwd=ENGINE_REPO, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]

    for shard in (0, 1):
        results = out / "pods" / "claims" / f"pv-wordfreq-demo-{shard}" / "results" / str(shard)
        report = json.loads((results / "report").read_text())
        assert report["shard"] == shard and report["bytes"] == 256 * 1024
        assert report["words"] > 0 and report["top10"]
        assert f"shard {shard}: {256 * 1024} bytes" in result.stderr
    # The image it built is in the registry, and the pods are gone (their volumes stay).
    assert result.stdout.startswith(f"{REGISTRY}/imagekit-test/demo:latest@sha256:")  # build --push prints it
    assert not docker_client.containers.list(all=True, filters={"name": "wordfreq-demo-"})


def test_demo_on_the_host_needs_no_engine(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "OUT": str(out), "WORDFREQ_BYTES": "256Ki"}
    result = subprocess.run(["sh", "scripts/demo.sh", "--host"], cwd=ENGINE_REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((out / "host" / "results" / "report").read_text())
    assert report["bytes"] == 256 * 1024 and report["words"] > 0
