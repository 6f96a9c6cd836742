"""The four failure levels on the real cluster, as `imagekit pod kill` injects them into local pods
(tests/test_pod_emulator.py): pod-gate held at `total` in shard 1, then its step process killed, its pipeline
container killed (through the node's CRI), its pod deleted, or its node lost (`scripts/cluster.sh stop-node`).
Each resumes from what survives that level, with the same runs, started steps and restored items as on the
local pods, and every shard's results are those of a clean local run."""
from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import imagekit
from fixtures_cluster import CLUSTER_SCRIPT, KubeCluster
from fixtures_engine import BASE_IMAGE, REGISTRY
from fixtures_pods import GATE_PIPELINE
from imagekit_deploy.emulator.blueprint import pod_blueprint
from imagekit_deploy.emulator.faults import STEP_PROCESS_SCRIPT, supervisord_conf_pattern
from test_pod_emulator import GATE_COUNT, LEVELS, local_reference, tree

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow]

SAFE = {"square/squares@ssd", "evens/evens@ssd", "square/squares@pv"}


@pytest.fixture(scope="module")
def gate_by_digest(engine_ready: None) -> str:
    built = imagekit("build", GATE_PIPELINE, "--base", BASE_IMAGE, "--tag", f"{REGISTRY}/imagekit-test/cluster-gate:1",
                     "--push")
    assert built.returncode == 0, built.stderr[-3000:]
    return built.stdout.strip()


@pytest.fixture
def gate_set(kube: KubeCluster, gate_by_digest: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 2-shard pod-gate set (local-PV SSD: per node, so a lost node's SSD is gone), shard 1 held at `total`.
    Shard 1's PV claim is made first, bound to a known volume, so the gate is on it before the pod starts."""
    name = f"gate-{secrets.token_hex(3)}"
    volumes = json.loads(kube.kubectl("get", "pv", "-o", "json"))["items"]
    free = next(v for v in volumes if v["spec"]["storageClassName"] == "imagekit-shared"
                and v["status"]["phase"] == "Available")
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": f"pv-{name}-1", "namespace": "default",
                          "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "imagekit"}},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "imagekit-shared",
                      "volumeName": free["metadata"]["name"], "resources": {"requests": {"storage": "1Gi"}}}}
    (tmp_path / "claim.yaml").write_text(yaml.safe_dump(claim))
    kube.kubectl("apply", "-f", str(tmp_path / "claim.yaml"))
    gate = Path(free["spec"]["hostPath"]["path"]) / "gates" / "hold-total"
    gate.parent.mkdir(parents=True, exist_ok=True)
    gate.touch()
    rendered = tmp_path / "rendered"
    done = imagekit("deploy", "render", GATE_PIPELINE, "--image", gate_by_digest, "--name", name, "--replicas", "2",
                    "--pv-storage-class", "imagekit-shared", "--pv-size", "1Gi", "--ssd-size", "1Gi", "-d", rendered)
    assert done.returncode == 0, done.stderr
    workload = yaml.safe_load((rendered / "statefulset.yaml").read_text())
    [container] = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "pipeline"]
    container["args"] = [*(container.get("args") or []), f"--param=COUNT={GATE_COUNT}"]
    (rendered / "statefulset.yaml").write_text(yaml.safe_dump(workload, sort_keys=False))
    applied = kube.imagekit("deploy", "apply", rendered)
    assert applied.returncode == 0, applied.stderr
    try:
        yield name, gate
    finally:
        gate.unlink(missing_ok=True)
        kube.imagekit("deploy", "delete", name, "--delete-data")


def shard(kube: KubeCluster, name: str, ordinal: int) -> dict[str, Any]:
    done = kube.imagekit("deploy", "status", name, "-o", "json")
    assert done.returncode == 0, done.stderr
    return next((s for s in json.loads(done.stdout)["shards"] if s["shard"] == ordinal), {})


def wait_for(kube: KubeCluster, name: str, ordinal: int, what: str, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = shard(kube, name, ordinal)
        if found and predicate(found):
            return found
        assert time.monotonic() < deadline, f"{what}: {found}\n{kube.kubectl('get', 'pods', '-o', 'wide')}"
        time.sleep(1)


def inject(kube: KubeCluster, name: str, held: dict[str, Any], level: str) -> None:
    pod = held["pod"]
    if level == "process":
        workload = json.loads(kube.kubectl("get", "statefulsets.apps.kruise.io", name, "-o", "json"))
        blueprint = pod_blueprint(workload, name, "default", 1)
        script = STEP_PROCESS_SCRIPT
        kube.kubectl("exec", pod, "-c", "pipeline", "--", "python3", "-c", script,
                     supervisord_conf_pattern(blueprint), "total", "kill")
    elif level == "container":
        described = json.loads(kube.kubectl("get", "pod", pod, "-o", "json"))
        [status] = [c for c in described["status"]["containerStatuses"] if c["name"] == "pipeline"]
        container_id = status["containerID"].split("://", 1)[1]
        stopped = subprocess.run(["bash", str(CLUSTER_SCRIPT), "crictl", held["node"], "stop", "--timeout", "0",
                                  container_id], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
    elif level == "pod":
        kube.kubectl("delete", "pod", pod, "--wait=true")
    else:
        stopped = subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop-node", held["node"]], capture_output=True,
                                 text=True, timeout=300)
        assert stopped.returncode == 0, stopped.stderr
        # The operator's part (docs/deploy.md, "Node loss and the SSD"): the lost node's SSD claim goes, and the
        # pod that waits for it; the StatefulSet makes both again on the node that is left.
        kube.kubectl("delete", "pvc", f"ssd-{name}-1", "--wait=false")
        kube.kubectl("delete", "pod", pod, "--wait=false", "--ignore-not-found")


@pytest.mark.parametrize("level", list(LEVELS))
def test_failure_level_resumes_as_on_the_local_pods(level: str, kube: KubeCluster, gate_set: tuple[str, Path],
                                                     tmp_path: Path) -> None:
    runs, started, restored = LEVELS[level]
    name, gate = gate_set
    before = wait_for(kube, name, 1, "total held with its inputs checkpointed",
                      lambda s: s["run"]["steps"].get("total") == "running" and set(s["run"]["checkpoints"]) >= SAFE)
    assert sorted(before["run"]["started"]) == ["evens", "gen", "square", "total"]
    try:
        inject(kube, name, before, level)
        held = wait_for(kube, name, 1, f"{level}: the shard held at total again",
                        lambda s: s["uid"] and s["run"]["runs"] == runs and s["run"]["steps"].get("total") == "running"
                        and (s["uid"] != before["uid"]) == (level in ("pod", "node"))
                        and (s["restarts"] > before["restarts"] or level in ("pod", "node")), timeout=600)
        assert held["run"]["started"] == started[:started.index("total") + 1]
        assert held["run"]["restored"] == restored
        if level == "node":
            assert held["node"] != before["node"]  # the lost node's SSD is never read: restored from the PV
        gate.unlink()
        waited = kube.imagekit("deploy", "wait", name, "--timeout", "300", timeout=400)
        assert waited.returncode == 0, waited.stderr
        final = shard(kube, name, 1)
        assert final["run"]["runs"] == runs and final["run"]["started"] == started
        assert final["run"]["restored"] == restored
        out = tmp_path / "results"
        assert kube.imagekit("deploy", "results", name, "-d", out).returncode == 0
        for ordinal in (0, 1):
            reference = local_reference(GATE_PIPELINE, tmp_path, ordinal, 2, f"COUNT={GATE_COUNT}")
            assert tree(out / str(ordinal)) == tree(reference), f"shard {ordinal} after a {level} failure"
    finally:
        if level == "node":
            subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], capture_output=True, timeout=1800)
