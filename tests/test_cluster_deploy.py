"""imagekit's manifests and deploy verbs on a real Kubernetes with OpenKruise (scripts/cluster.sh: two nodes,
Kruise's webhooks live, images pulled by digest from the local registry)."""
from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import imagekit
from fixtures_cluster import KubeCluster
from fixtures_engine import BASE_IMAGE, REGISTRY, WORDFREQ, expected_wordfreq

pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.slow]

CORPUS = "128Ki"
STORAGE = ("--pv-storage-class", "imagekit-shared", "--pv-size", "1Gi", "--ssd-size", "1Gi")


@pytest.fixture(scope="module")
def wordfreq_by_digest(engine_ready: None) -> str:
    built = imagekit("build", WORDFREQ, "--base", BASE_IMAGE, "--tag", f"{REGISTRY}/imagekit-test/cluster-wordfreq:1",
                     "--push")
    assert built.returncode == 0, built.stderr[-3000:]
    [reference] = built.stdout.splitlines()
    assert "@sha256:" in reference
    return reference


def render(tmp_path: Path, image: str, name: str, *args: str, params: dict[str, str] | None = None) -> Path:
    out = tmp_path / f"rendered-{name}"
    done = imagekit("deploy", "render", WORDFREQ, "--image", image, "--name", name, "--require-digest", "-d", out, *args)
    assert done.returncode == 0, done.stderr
    if params:  # the pods' runtime takes --param as `imagekit pod up --param` gives it
        path = out / "statefulset.yaml"
        workload = yaml.safe_load(path.read_text())
        [container] = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "pipeline"]
        container["args"] = [*(container.get("args") or []), *(f"--param={k}={v}" for k, v in params.items())]
        path.write_text(yaml.safe_dump(workload, sort_keys=False))
    return out


@pytest.mark.parametrize("options", [
    ("--flavor", "kruise", "--ssd", "hostpath"),
    ("--flavor", "kruise", "--ssd", "local-pv", "--cpus", "2", "--max-unavailable", "50%", "--skip-shard", "1"),
    ("--flavor", "statefulset", "--ssd", "hostpath"),
    ("--flavor", "statefulset", "--ssd", "local-pv", "--memory-limit", "3Gi"),
], ids=["kruise-hostpath", "kruise-local-pv", "statefulset-hostpath", "statefulset-local-pv"])
def test_every_flavor_passes_a_server_dry_run_with_kruises_webhooks(
        kube: KubeCluster, wordfreq_by_digest: str, tmp_path: Path, options: tuple[str, ...]) -> None:
    name = f"dry-{secrets.token_hex(3)}"
    rendered = render(tmp_path, wordfreq_by_digest, name, "--replicas", "3", *options, *STORAGE)
    done = kube.imagekit("deploy", "apply", rendered, "--dry-run", "server", "-o", "json")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)
    assert {item["kind"] for item in applied} >= {"StatefulSet", "Service"}
    # A dry run keeps nothing.
    assert name not in kube.kubectl("get", "statefulsets.apps.kruise.io,statefulsets.apps", "-o", "name")


def test_wordfreq_runs_as_four_shards_on_two_nodes(kube: KubeCluster, wordfreq_by_digest: str, tmp_path: Path) -> None:
    name = f"wf-{secrets.token_hex(3)}"
    rendered = render(tmp_path, wordfreq_by_digest, name, "--replicas", "4", "--ssd", "local-pv", *STORAGE,
                      params={"WORDFREQ_BYTES": CORPUS})
    applied = kube.imagekit("deploy", "apply", rendered)
    assert applied.returncode == 0, applied.stderr
    try:
        waited = kube.imagekit("deploy", "wait", name, "--timeout", "600", timeout=700)
        assert waited.returncode == 0, waited.stderr + kube.kubectl("get", "pods", "-o", "wide")
        status: dict[str, Any] = json.loads(kube.imagekit("deploy", "status", name, "-o", "json").stdout)
        shards = status["shards"]
        assert [shard["shard"] for shard in shards] == [0, 1, 2, 3]
        assert all(shard["phase"] == "Complete" and shard["done"] == shard["total"] == 5 for shard in shards)
        assert {shard["node"] for shard in shards} == {"imagekit-node-a", "imagekit-node-b"}
        # kubectl users see it too: `kubectl get pods -L imagekit.dev/shard-complete`.
        pods = json.loads(kube.kubectl("get", "pods", "-l", f"app.kubernetes.io/name={name}", "-o", "json"))["items"]
        assert [pod["metadata"]["labels"].get("imagekit.dev/shard-complete") for pod in pods] == ["true"] * 4
        digest = wordfreq_by_digest.split("@", 1)[1]
        assert all(shard["image_id"].endswith(digest) or digest in shard["image"] for shard in shards)
        out = tmp_path / "results"
        copied = kube.imagekit("deploy", "results", name, "-d", out)
        assert copied.returncode == 0, copied.stderr
        for shard in range(4):
            expected_counts, stats = expected_wordfreq(WORDFREQ, tmp_path, shard, CORPUS)
            counts = [(word, int(count)) for word, count in
                      (line.split("\t") for line in (out / str(shard) / "counts").read_text().splitlines())]
            assert counts == expected_counts
            report = json.loads((out / str(shard) / "report").read_text())
            assert report["shard"] == shard and report["words"] == stats["words"]
        logs = kube.imagekit("deploy", "logs", name, "--shard", "2")
        assert logs.returncode == 0 and "report" in logs.stdout
    finally:
        deleted = kube.imagekit("deploy", "delete", name, "--delete-data")
        assert deleted.returncode == 0, deleted.stderr
