"""The local Kubernetes + OpenKruise cluster for the `cluster` tests: `scripts/cluster.sh up` once per session
(a cold build of its binaries takes minutes; cached after), down again at the end if this session started it.

Outside CI, a machine without Go (or a run without root) skips these tests with one line; in CI they run."""
from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Argument, RunResult, imagekit

CLUSTER_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cluster.sh"


@dataclass(frozen=True)
class KubeCluster:
    kubeconfig: Path

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.kubeconfig)}

    def imagekit(self, *args: Argument, timeout: float = 600) -> RunResult:
        return imagekit(*args, env=self.env(), timeout=timeout)

    def kubectl(self, *args: str) -> str:
        done = subprocess.run(["bash", str(CLUSTER_SCRIPT), "kubectl", *args], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout


def _cluster_is_up() -> bool:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, timeout=120).returncode == 0


@pytest.fixture(scope="session")
def kube(engine_ready: None) -> Iterator[KubeCluster]:
    if os.getuid() != 0:
        pytest.skip("the local cluster needs root (scripts/cluster.sh up)")
    if shutil.which("go") is None and not os.environ.get("CI"):
        pytest.skip("no Go toolchain: the local cluster is built from Go modules (scripts/cluster.sh)")
    was_up = _cluster_is_up()
    done = subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        pytest.fail(f"scripts/cluster.sh up exited {done.returncode}:\n{done.stderr[-4000:]}")
    yield KubeCluster(Path(done.stdout.strip().splitlines()[-1]))
    if not was_up:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "down"], capture_output=True, timeout=600)
