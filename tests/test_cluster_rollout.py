"""Updates and failures on the real cluster: wordfreq v1 run to completion, then v2 (only `report` changed)
applied. OpenKruise updates in place: same pod, its container restarted once on the new image, shm kept, only
`report` runs again; a plain StatefulSet recreates the pod, which resumes from the SSD. A pod deleted resumes
from the SSD; a node lost (`scripts/cluster.sh stop-node`) brings the shard back on the other node, from the
PV. Nothing committed is computed again, and the results stay right."""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_cluster import CLUSTER_SCRIPT, KubeCluster
from fixtures_engine import BASE_IMAGE, REGISTRY, WORDFREQ, build_json, copy_pipeline, expected_wordfreq
from test_cluster_deploy import CORPUS, STORAGE, render

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow]

UPSTREAM = {"generate", "tokenize", "count", "linestats"}


@dataclass(frozen=True)
class Versions:
    pipeline: Path
    v1: str  # REF@sha256:…
    v2: str


@pytest.fixture(scope="module")
def versions(engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Versions:
    pipeline = copy_pipeline(tmp_path_factory.mktemp("rollout") / "wordfreq", WORDFREQ)
    repository = f"{REGISTRY}/imagekit-test/cluster-rollout"

    def build(tag: str) -> str:
        report = build_json(imagekit("build", pipeline, "--tag", f"{repository}:{tag}", "--base", BASE_IMAGE,
                                     "--push", "-o", "json", timeout=900))
        return str(report["reference"])

    v1 = build("v1")
    report = pipeline / "steps" / "report" / "main.py"
    report.write_text(report.read_text().replace('        "top10": top,\n', '        "top10": top,\n        "edition": 2,\n'))
    return Versions(pipeline, v1, build("v2"))


@pytest.fixture
def deployed(kube: KubeCluster) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        kube.imagekit("deploy", "delete", name, "--delete-data")


def status(kube: KubeCluster, name: str) -> dict[str, Any]:
    done = kube.imagekit("deploy", "status", name, "-o", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def wait(kube: KubeCluster, name: str, timeout: float = 600) -> dict[str, Any]:
    done = kube.imagekit("deploy", "wait", name, "--timeout", str(timeout), timeout=timeout + 60)
    assert done.returncode == 0, done.stderr + kube.kubectl("get", "pods", "-o", "wide")
    return status(kube, name)


def start(kube: KubeCluster, versions: Versions, tmp_path: Path, deployed: list[str], replicas: int,
          *flags: str) -> tuple[str, dict[str, Any]]:
    name = f"ro-{secrets.token_hex(3)}"
    deployed.append(name)
    rendered = render(tmp_path, versions.v1, name, "--replicas", str(replicas), *STORAGE, *flags,
                      params={"WORDFREQ_BYTES": CORPUS})
    applied = kube.imagekit("deploy", "apply", rendered)
    assert applied.returncode == 0, applied.stderr
    return name, wait(kube, name)


def update_to_v2(kube: KubeCluster, versions: Versions, tmp_path: Path, name: str, replicas: int, *flags: str) -> str:
    rendered = render(tmp_path / "v2", versions.v2, name, "--replicas", str(replicas), *STORAGE, *flags,
                      params={"WORDFREQ_BYTES": CORPUS})
    applied = kube.imagekit("deploy", "apply", rendered)
    assert applied.returncode == 0, applied.stderr
    return applied.stdout


def results_right(kube: KubeCluster, name: str, versions: Versions, tmp_path: Path, shards: int, edition: int) -> None:
    out = tmp_path / f"results-{secrets.token_hex(2)}"
    assert kube.imagekit("deploy", "results", name, "-d", out).returncode == 0
    for shard in range(shards):
        expected, stats = expected_wordfreq(versions.pipeline, tmp_path, shard, CORPUS)
        lines = (out / str(shard) / "counts").read_text().splitlines()
        assert [(w, int(c)) for w, c in (line.split("\t") for line in lines)] == expected
        report = json.loads((out / str(shard) / "report").read_text())
        assert report["words"] == stats["words"] and report.get("edition", 1) == edition


def test_kruise_updates_in_place_and_runs_only_the_changed_step(kube: KubeCluster, versions: Versions,
                                                                tmp_path: Path, deployed: list[str]) -> None:
    name, before = start(kube, versions, tmp_path, deployed, 2)
    applied = update_to_v2(kube, versions, tmp_path, name, 2)
    assert "recreated" not in applied  # apply says when pods would be recreated: not here
    after = wait(kube, name)
    for old, new in zip(before["shards"], after["shards"], strict=True):
        assert new["uid"] == old["uid"]  # the same pod: its shm stayed
        assert new["restarts"] == old["restarts"] + 1
        assert new["image_id"].endswith(versions.v2.split("@")[1])
        assert new["run"]["started"] == ["report"]  # only the changed step ran again
        assert set(new["run"]["reused"]) >= UPSTREAM
        # As on the local pods (tests/test_pod_inplace.py): v1, complete, had freed from shm what its checkpoints
        # hold, so report's inputs came back from the SSD.
        assert new["run"]["inputs"] == {"report": {"counts": "ssd", "linestats": "ssd"}}
        assert new["run"]["runs"] == 2  # the journal lives in shm, which the update kept
    # Kruise's readiness gate: the pod is ready again once its new container passes its readiness probe.
    deadline = time.monotonic() + 60
    while True:
        pods = json.loads(kube.kubectl("get", "pods", "-l", f"app.kubernetes.io/name={name}", "-o", "json"))["items"]
        conditions = [{c["type"]: c["status"] for c in pod["status"]["conditions"]} for pod in pods]
        if all(c.get("InPlaceUpdateReady") == "True" and c.get("Ready") == "True" for c in conditions):
            break
        assert time.monotonic() < deadline, conditions
        time.sleep(1)
    results_right(kube, name, versions, tmp_path, 2, edition=2)


def test_a_plain_statefulset_recreates_and_resumes_from_the_ssd(kube: KubeCluster, versions: Versions,
                                                                tmp_path: Path, deployed: list[str]) -> None:
    name, before = start(kube, versions, tmp_path, deployed, 1, "--flavor", "statefulset")
    applied = update_to_v2(kube, versions, tmp_path, name, 1, "--flavor", "statefulset")
    assert "recreated" in applied and "plain StatefulSet" in applied
    after = wait(kube, name)
    [old], [new] = before["shards"], after["shards"]
    assert new["uid"] != old["uid"]
    assert new["run"]["started"] == ["report"] and new["run"]["runs"] == 1  # the journal lived in the old shm
    assert new["run"]["inputs"] == {"report": {"counts": "ssd", "linestats": "ssd"}}  # as on the local pods
    assert new["run"]["restored"] == {"count/counts": "ssd", "linestats/linestats": "ssd"}
    results_right(kube, name, versions, tmp_path, 1, edition=2)


def test_a_deleted_pod_resumes_from_the_ssd_and_a_lost_node_from_the_pv(kube: KubeCluster, versions: Versions,
                                                                        tmp_path: Path, deployed: list[str]) -> None:
    name, before = start(kube, versions, tmp_path, deployed, 2, "--ssd", "hostpath")
    [shard0, shard1] = before["shards"]
    kube.kubectl("delete", "pod", shard0["pod"], "--wait=true")
    time.sleep(2)
    after = wait(kube, name)
    again = after["shards"][0]
    assert again["uid"] != shard0["uid"] and again["node"] == shard0["node"]  # hostPath SSD: back on its node
    assert again["run"]["status"] == "already-complete" or not (set(again["run"]["started"]) & UPSTREAM)
    # The node of shard 1 is lost: its pod comes back on the other node and resumes from the PV.
    lost = shard1["node"]
    import subprocess
    stopped = subprocess.run(["bash", str(CLUSTER_SCRIPT), "stop-node", lost], capture_output=True, text=True,
                             timeout=300)
    assert stopped.returncode == 0, stopped.stderr
    try:
        moved = wait(kube, name, timeout=900)["shards"][1]
        assert moved["node"] != lost and moved["uid"] != shard1["uid"]
        assert not (set(moved["run"]["started"]) & UPSTREAM) or moved["run"]["status"] == "already-complete"
        results_right(kube, name, versions, tmp_path, 2, edition=1)
    finally:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), "up"], capture_output=True, timeout=1800)
