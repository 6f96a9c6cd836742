"""Local pods (`imagekit pod up|status|kill|down`): the rendered StatefulSet's pods on the Docker
engine, one shard per ordinal, and the four failure levels of docs/contract.md injected into them.

Everything is real: images built by `imagekit build`, manifests by `imagekit deploy render`, pods
made from those manifests alone, the runtime's journal read from the pod's shm. Each pod's output
is compared with `imagekit run --local` of the same shard.
"""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, imagekit
from fixtures_engine import RUNTIME_UID, SMALL_CORPUS
from fixtures_pods import GATE_PIPELINE
from imagekit_deploy.emulator.state import LABEL_SET

pytestmark = pytest.mark.docker

WORDFREQ = REPO / "pipelines" / "wordfreq"
GATE_COUNT = "3000"  # numbers per shard in pod-gate: a fraction of a second per step



def local_reference(pipeline: Path, tmp: Path, shard: int, shard_count: int, *params: str) -> Path:
    """The same shard run by `imagekit run --local` on this machine: what a pod must produce."""
    where = tmp / f"reference-{shard}"
    shm = Path("/dev/shm") / f"imagekit-test-pods-{uuid.uuid4().hex[:8]}"
    try:
        result = imagekit("run", pipeline, "--local", "--shard-index", str(shard), "--shard-count", str(shard_count),
                          "--results", where / "results", "--ssd", where / "ssd", "--pv", where / "pv",
                          "--shm-dir", shm, *(arg for p in params for arg in ("--param", p)))
    finally:
        subprocess.run(["rm", "-rf", str(shm)], check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return where / "results"


def tree(directory: Path) -> dict[str, bytes]:
    """Every result file below directory, by relative path (bookkeeping dot-files left out)."""
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)}


@pytest.mark.slow  # about 8 s (two pods to completion): outside `-m "not slow"`
def test_two_replicas_each_run_their_own_shard(pod_sets: Any, example_image_docker: Any, docker_client: Any,
                                               tmp_path: Path) -> None:
    pods = pod_sets(WORDFREQ, example_image_docker.tag, 2, "--ssd", "local-pv")
    report = pods.up("--param", f"WORDFREQ_BYTES={SMALL_CORPUS}")
    assert [(p["pod"], p["action"]) for p in report["pods"]] == [(f"{pods.name}-0", "created"),
                                                                 (f"{pods.name}-1", "created")]

    statuses = pods.status("--wait", "--timeout", "180")
    assert [s["phase"] for s in statuses] == ["Complete", "Complete"]
    outputs = []
    for status in statuses:
        shard = status["ordinal"]
        assert (status["shard_index"], status["shard_count"]) == (str(shard), "2")
        assert status["restarts"] == 0
        # The journal, read through the sandbox's /dev/shm: one run, every step started there.
        assert status["run"]["runs"] == 1
        assert sorted(status["run"]["started"]) == ["count", "generate", "linestats", "report", "tokenize"]
        results = Path(status["results"])
        assert results == pods.claim("pv", shard) / "results" / str(shard)
        reference = local_reference(WORDFREQ, tmp_path, shard, 2, f"WORDFREQ_BYTES={SMALL_CORPUS}")
        produced = tree(results)
        assert set(produced) == {"counts", "report"}
        assert produced == tree(reference), f"shard {shard} differs from `imagekit run --local`"
        assert (results / "counts").stat().st_uid == RUNTIME_UID
        assert json.loads(produced["report"])["shard"] == shard
        outputs.append(produced)
    assert outputs[0]["counts"] != outputs[1]["counts"]  # each pod ran its own shard

    # The pod is the rendered one: shard identity from the downward API, locked down, shm in the sandbox.
    rendered = (pods.rendered / "statefulset.yaml").read_text()
    for ordinal in (0, 1):
        pipeline = docker_client.containers.get(pods.container(ordinal, "pipeline")).attrs
        sandbox = docker_client.containers.get(pods.container(ordinal, "sandbox")).attrs
        env = dict(item.split("=", 1) for item in pipeline["Config"]["Env"])
        assert env["IMAGEKIT_SHARD_INDEX"] == str(ordinal)
        assert env["IMAGEKIT_POD_NAME"] == f"{pods.name}-{ordinal}"
        assert env["IMAGEKIT_POD_NAMESPACE"] == "default"
        assert env["IMAGEKIT_SHARD_COUNT"] == "2"
        assert pipeline["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}"
        assert pipeline["HostConfig"]["ReadonlyRootfs"] is True
        assert pipeline["HostConfig"]["CapDrop"] == ["ALL"]
        assert pipeline["HostConfig"]["IpcMode"] == f"container:{sandbox['Id']}"
        assert pipeline["HostConfig"]["RestartPolicy"]["Name"] == "always"
        assert pipeline["HostConfig"]["Memory"] == 2304 * 1024 * 1024 and "memory: 2304Mi" in rendered
        assert sandbox["HostConfig"]["IpcMode"] == "shareable"
        assert sandbox["HostConfig"]["ShmSize"] == 1024 ** 3 and "sizeLimit: 1Gi" in rendered
        assert sandbox["Config"]["Hostname"] == f"{pods.name}-{ordinal}"
        mounts = {m["Destination"]: m["Source"] for m in pipeline["Mounts"]}
        assert mounts["/var/lib/imagekit/pv"] == str(pods.claim("pv", ordinal).resolve())
        assert mounts["/var/lib/imagekit/ssd"] == str(pods.claim("ssd", ordinal).resolve())

    text = pods.cli("status").stdout
    assert f"{pods.name}-1" in text and "Complete" in text

    down = imagekit("pod", "down", "--state-dir", pods.state_dir, "--output", "json")
    assert down.returncode == 0, down.stderr
    assert sorted(down.summary["removed_pods"]) == [f"{pods.name}-0", f"{pods.name}-1"]
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL_SET}={pods.name}"}) == []
    # Claims are retained, like the StatefulSet's Retain policy; the pods are gone.
    assert (pods.claim("pv", 1) / "results" / "1" / "counts").is_file()
    assert imagekit("pod", "status", "--state-dir", pods.state_dir).returncode == 2


# Held at `total` (squares and evens committed, squares on the PV), each level resumes from what survives it.
#   gen ─┬─ square ─┬─ total ── final          checkpoint.major: [squares, total]
#        └─ evens  ─┘
LEVELS = {
    #          runs in the journal, steps started by the last run, restored from checkpoints
    "process": (2, ["total", "final"], {}),
    "container": (2, ["total", "final"], {}),
    "pod": (1, ["total", "final"], {"square/squares": "ssd", "evens/evens": "ssd"}),
    "node": (1, ["gen", "evens", "total", "final"], {"square/squares": "pv"}),
}


@pytest.mark.slow  # about 6 s per level: outside `-m "not slow"`
@pytest.mark.parametrize("level", list(LEVELS))
def test_failure_level_resumes_to_a_clean_runs_output(level: str, pod_sets: Any, pod_gate_image: str,
                                                      tmp_path: Path) -> None:
    runs, started, restored = LEVELS[level]
    pods = pod_sets(GATE_PIPELINE, pod_gate_image, 2, "--ssd", "local-pv")
    ordinal = 1
    gate = pods.claim("pv", ordinal) / "gates" / "hold-total"
    gate.parent.mkdir(parents=True)
    gate.touch()
    pods.up("--param", f"COUNT={GATE_COUNT}")

    safe = {"square/squares@ssd", "evens/evens@ssd", "square/squares@pv"}
    before = pods.wait(ordinal, lambda p: p["run"]["steps"].get("total") == "running"
                       and safe <= set(p["run"]["checkpointed"]), "total held with its inputs checkpointed")
    assert sorted(before["run"]["started"]) == ["evens", "gen", "square", "total"]

    result = imagekit("pod", "kill", str(ordinal), "--level", level, "--step", "total", "--state-dir", pods.state_dir,
                      "--output", "json")
    assert result.returncode == 0, result.stderr
    assert result.summary["level"] == level and result.summary["step"] == "total"
    if level == "process":
        assert result.summary["pid"] > 0

    # The replacement gets to `total` again, still held, having run only what had not survived.
    held = pods.wait(ordinal, lambda p: p["run"]["runs"] == runs and p["run"]["steps"].get("total") == "running",
                     f"{level}: the restarted pod held at total")
    assert held["run"]["started"] == started[:started.index("total") + 1]
    assert held["run"]["restored"] == restored
    assert held["restarts"] == (1 if level in ("process", "container") else 0)
    gate.unlink()

    statuses = pods.status("--wait", "--timeout", "60")
    assert [s["phase"] for s in statuses] == ["Complete", "Complete"]
    final = next(s for s in statuses if s["ordinal"] == ordinal)
    assert final["run"]["runs"] == runs
    assert final["run"]["started"] == started
    assert final["run"]["restored"] == restored
    for status in statuses:
        shard = status["ordinal"]
        reference = local_reference(GATE_PIPELINE, tmp_path, shard, 2, f"COUNT={GATE_COUNT}")
        assert tree(Path(status["results"])) == tree(reference), f"shard {shard} after a {level} failure"
    untouched = next(s for s in statuses if s["ordinal"] != ordinal)
    assert untouched["run"]["runs"] == 1 and untouched["restarts"] == 0


@pytest.mark.slow  # 4 s or more
def test_kill_and_up_refuse_what_they_cannot_do(pod_sets: Any, pod_gate_image: str, tmp_path: Path) -> None:
    pods = pod_sets(GATE_PIPELINE, pod_gate_image, 1, "--ssd", "local-pv")
    # No engine: exit 3 with the hint, before anything is made.
    missing = imagekit("pod", "up", pods.rendered, "--state-dir", pods.state_dir,
                       env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert missing.returncode == 3, missing.stderr
    assert "apt-get install docker.io" in missing.stderr and "scripts/" not in missing.stderr

    pods.up("--param", f"COUNT={GATE_COUNT}")
    pods.cli("status", "--wait", "--timeout", "60")
    wrong = pods.cli("kill", "7", "--level", "pod", expect=2)
    assert "ordinal 7 is not a pod" in wrong.stderr
    idle = pods.cli("kill", "0", "--level", "process", expect=2)  # complete: no step process to kill
    assert "no step process is running" in idle.stderr
    again = pods.up("--param", f"COUNT={GATE_COUNT}")  # idempotent: the running pod is kept
    assert [p["action"] for p in again["pods"]] == ["unchanged"]
    other = imagekit("pod", "up", pods.rendered, "--state-dir", pods.state_dir, "--param", "COUNT=5")
    assert other.returncode == 2 and "pod down" in other.stderr
    # A pod past the rendering's shards would restart forever: refused before anything starts.
    beyond = imagekit("pod", "up", pods.rendered, "--state-dir", pods.state_dir, "--replicas", "2")
    assert beyond.returncode == 2 and "holds 1 shard(s)" in beyond.stderr and "re-render" in beyond.stderr


@pytest.mark.slow  # 4 s or more
def test_hostpath_ssd_is_prepared_by_the_rendered_init_container(pod_sets: Any, pod_gate_image: str) -> None:
    pods = pod_sets(GATE_PIPELINE, pod_gate_image, 1, "--ssd", "hostpath")
    pods.up("--param", f"COUNT={GATE_COUNT}")
    status = pods.status("--wait", "--timeout", "60")[0]
    assert status["phase"] == "Complete"
    ssd = pods.state_dir / "node" / "var/lib/imagekit" / pods.name / "default" / f"{pods.name}-0"
    assert ssd.stat().st_uid == RUNTIME_UID
    assert any(ssd.rglob("manifest.json"))
    # A new pod on the same node runs the init container again over the existing directory.
    pods.cli("kill", "0", "--level", "pod")
    assert pods.status("--wait", "--timeout", "60")[0]["phase"] == "Complete"


def test_pods_are_read_from_the_rendering_alone(tmp_path: Path) -> None:
    """Which pods exist and what each sees come from the rendered StatefulSet: reserved ordinals are
    skipped, the downward API and $(VAR) are filled in per pod, claims are per ordinal. No engine needed."""
    from imagekit_deploy.emulator.blueprint import VolumeKind, set_blueprint
    from imagekit_deploy.writer import load_rendered

    rendered = tmp_path / "rendered"
    result = imagekit("deploy", "render", GATE_PIPELINE, "--image", "example.com/pod-gate:1", "--replicas", "4",
                      "--skip-shard", "1", "--namespace", "batch", "--ssd", "hostpath", "-d", rendered)
    assert result.returncode == 0, result.stderr
    pods = set_blueprint(load_rendered(rendered))
    assert (pods.name, pods.namespace) == ("pod-gate", "batch")
    assert pods.ordinals() == [0, 2, 3]  # replicas 3, ordinal 1 reserved: ordinals are shards
    pod = pods.pod(2)
    env = pod.container.env
    assert (env["IMAGEKIT_SHARD_INDEX"], env["IMAGEKIT_SHARD_COUNT"]) == ("2", "4")
    assert (env["IMAGEKIT_POD_NAME"], env["IMAGEKIT_POD_NAMESPACE"]) == ("pod-gate-2", "batch")
    assert pod.container.user == f"{RUNTIME_UID}:{RUNTIME_UID}" and pod.container.read_only
    assert pod.shm_size == 64 * 1024 ** 2
    assert pod.volumes["pv"].kind == VolumeKind.CLAIM and pod.volumes["pv"].source == "pv-pod-gate-2"
    ssd = pod.checkpoint_mount("IMAGEKIT_SSD_DIR")
    assert ssd is not None
    assert pod.volumes[ssd.volume].kind == VolumeKind.HOST_PATH and ssd.sub_path == "batch/pod-gate-2"
    init = pod.init_containers[0]
    assert init.entrypoint is not None
    assert init.entrypoint[-1] == "/ssd-root/batch/pod-gate-2"  # $(VAR) in the command, as a kubelet expands it
    assert pod.results_dir() == "/var/lib/imagekit/pv/results/2"
    # The deploy path stays free of the Docker SDK until an engine is needed.
    code = ("import sys, imagekit_deploy.emulator.blueprint, imagekit_deploy.emulator.state; "
            "sys.exit(1 if 'docker' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


@pytest.mark.slow  # 4 s or more
def test_two_state_directories_run_two_independent_sets_of_one_rendering(pod_sets: Any, pod_gate_image: str,
                                                                          tmp_path: Path) -> None:
    """Two CI jobs on one Docker host: the same rendering, two state directories, two sets that do not meet."""
    first = pod_sets(GATE_PIPELINE, pod_gate_image, 1)
    other_state = tmp_path / "second-job"
    first.up("--param", f"COUNT={GATE_COUNT}")
    second = imagekit("pod", "up", first.rendered, "--state-dir", other_state, "--param", f"COUNT={GATE_COUNT}",
                      timeout=240)
    try:
        assert second.returncode == 0, second.stderr
        assert first.status("--wait", "--timeout", "60")[0]["phase"] == "Complete"
        waited = imagekit("pod", "status", "--state-dir", other_state, "--wait", "--timeout", "60")
        assert waited.returncode == 0, waited.stderr
        down = imagekit("pod", "down", "--state-dir", other_state, "--delete-data")
        assert down.returncode == 0, down.stderr
        assert first.status()[0]["phase"] == "Complete"  # taking one set down left the other running
    finally:
        imagekit("pod", "down", "--state-dir", other_state, "--grace-period", "0", "--delete-data")
