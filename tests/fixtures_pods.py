"""Local pod sets for the tests of `imagekit pod …`: one emulated set driven through the CLI, and a fixture
that makes sets and takes each one down after its test. Star-imported by conftest.py."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import build_test_image
from imagekit_deploy.emulator.state import LABEL_SET, StateDir

__all__ = ["GATE_PIPELINE", "Pods", "pod_gate_image", "pod_sets"]

GATE_PIPELINE = Path(__file__).resolve().parent / "data" / "pipelines" / "pod-gate"


class Pods:
    """One emulated set, driven through the CLI as a user would, each call a separate process."""

    def __init__(self, root: Path, pipeline: Path, image: str, replicas: int, *render_args: str) -> None:
        self.name = f"pt-{uuid.uuid4().hex[:8]}"  # container names are per set: unique per test
        self.replicas = replicas
        self.rendered = root / "rendered"
        self.state_dir = root / "state"
        result = imagekit("deploy", "render", pipeline, "--image", image, "--replicas", str(replicas),
                          "--name", self.name, "-d", self.rendered, *render_args)
        assert result.returncode == 0, result.stderr

    def cli(self, *args: str, expect: int = 0) -> Any:
        result = imagekit("pod", *args, "--state-dir", self.state_dir, timeout=240)
        assert result.returncode == expect, f"exit {result.returncode}\n{result.stderr[-3000:]}"
        return result

    def up(self, *args: str) -> dict[str, Any]:
        result = imagekit("pod", "up", self.rendered, "--state-dir", self.state_dir, "--output", "json", *args,
                          timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.summary

    def status(self, *args: str) -> list[dict[str, Any]]:
        return self.cli("status", "--output", "json", *args).summary["pods"]

    def pod(self, ordinal: int) -> dict[str, Any]:
        return next(pod for pod in self.status() if pod["ordinal"] == ordinal)

    def container(self, ordinal: int, name: str) -> str:
        """The Docker name of one of a pod's containers (`<pod>.<container>.<state dir's scope>`, docs/deploy.md)."""
        return f"{self.name}-{ordinal}.{name}.{StateDir(self.state_dir).scope}"

    def claim(self, name: str, ordinal: int) -> Path:
        """A claim's directory, as docs/deploy.md documents the state layout."""
        return self.state_dir / "claims" / f"{name}-{self.name}-{ordinal}"

    def wait(self, ordinal: int, predicate: Any, what: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            pod = self.pod(ordinal)
            if predicate(pod):
                return pod
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached in {timeout:.0f}s; last status {json.dumps(pod)[:2000]}")
            time.sleep(0.2)


@pytest.fixture
def pod_sets(tmp_path: Path, docker_client: Any) -> Iterator[Callable[..., Pods]]:
    made: list[Pods] = []

    def make(pipeline: Path, image: str, replicas: int, *render_args: str) -> Pods:
        pods = Pods(tmp_path / f"set{len(made)}", pipeline, image, replicas, *render_args)
        made.append(pods)
        return pods

    yield make
    for pods in made:
        if pods.state_dir.exists():
            imagekit("pod", "down", "--state-dir", pods.state_dir, "--grace-period", "0", "--delete-data")
        left = docker_client.containers.list(all=True, filters={"label": f"{LABEL_SET}={pods.name}"})
        for container in left:
            container.remove(force=True)


@pytest.fixture(scope="session")
def pod_gate_image(engine_ready: None, build_env: dict[str, str]) -> str:
    """tests/data/pipelines/pod-gate built once per run: shell steps held while <pv>/gates/hold-<step> exists."""
    return build_test_image(GATE_PIPELINE, "pod-gate", build_env)
