"""In-place image updates of the local pods (`imagekit pod apply`): wordfreq v1 built, brought up and run to
completion; then its `report` step changed, v2 built, pushed, re-rendered and applied.

Kruise (InPlaceIfPossible) swaps the image in the running pod: the sandbox and its shm stay, only `report`
runs again, from shm. A plain StatefulSet recreates the pod: shm is lost, `report` runs from the SSD. An
update applied while `count` runs stops it within the grace period and runs it again under the new image,
from the upstream data committed in shm. Everything is real: images from `imagekit build`, manifests from
`imagekit deploy render`, pods on the Docker engine.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, SMALL_CORPUS, PipelineRun, assert_right_wordfreq, build_json, copy_pipeline
from fixtures_pods import Pods
from imagekit_core import contract
from imagekit_runtime.observe.journal import parse_text

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WORDFREQ_PARAM = f"WORDFREQ_BYTES={SMALL_CORPUS}"
# `count` held while <pv>/gates/hold-count exists, so a test can update the pod while it runs.
GATED_COUNT = ("name: count\n"
               "command: [sh, -c, 'while [ -e \"${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-count\" ]; "
               "do sleep 0.05; done; exec python3 main.py']\n"
               "inputs: [tokens, vocab]\noutputs: [counts]\nrequirements: requirements.txt\n")
UPSTREAM = ["generate", "tokenize", "count", "linestats"]


@dataclass(frozen=True)
class Versions:
    pipeline: Path   # v2's sources (report changed); v1 differs only in report
    v1: str
    v2: str
    repository: str
    v2_digest: str   # sha256:… of v2 in the registry


@pytest.fixture(scope="module")
def versions(engine_ready: None, build_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """wordfreq (with a gate in `count`) built and pushed as v1; its `report` changed, built and pushed as v2."""
    pipeline = copy_pipeline(tmp_path_factory.mktemp("inplace") / "wordfreq")
    (pipeline / "steps" / "count" / "step.yaml").write_text(GATED_COUNT)
    repository = f"{REGISTRY}/imagekit-test/wordfreq-inplace"

    def build(tag: str) -> dict[str, Any]:
        return build_json(imagekit("build", pipeline, "--tag", f"{repository}:{tag}", "--backend", "docker",
                                   "--base", BASE_IMAGE, "--push", "--output", "json", env=build_env, timeout=900))

    build("v1")
    report = pipeline / "steps" / "report" / "main.py"
    report.write_text(report.read_text().replace('        "top10": top,\n', '        "top10": top,\n        "edition": 2,\n'))
    pushed = build("v2")["pushed"]
    return Versions(pipeline=pipeline, v1=f"{repository}:v1", v2=f"{repository}:v2", repository=repository,
                    v2_digest=pushed["digest"])


def render(pods: Pods, pipeline: Path, image: str, *args: str) -> Path:
    """Render the set again, with another image, into a directory of its own."""
    where = pods.rendered.with_name(f"rendered-{image.rsplit(':', 1)[-1]}")
    result = imagekit("deploy", "render", pipeline, "--image", image, "--name", pods.name, "--replicas",
                      str(pods.replicas), "-d", where, *args)
    assert result.returncode == 0, result.stderr
    return where


def apply(pods: Pods, rendered: Path) -> dict[str, Any]:
    result = imagekit("pod", "apply", rendered, "--state-dir", pods.state_dir, "--output", "json", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.summary


def assert_right(status: dict[str, Any], pipeline: Path, tmp_path: Path) -> None:
    results = Path(status["results"])
    assert_right_wordfreq(PipelineRun(0, "", results), pipeline, tmp_path, status["ordinal"])
    assert json.loads((results / "report").read_text())["edition"] == 2  # v2's report made it


def sandbox_id(docker_client: Any, pods: Pods, ordinal: int) -> str:
    return str(docker_client.containers.get(pods.container(ordinal, "sandbox")).id)


def test_kruise_swaps_the_image_in_place_and_runs_only_the_changed_step_from_shm(
        pod_sets: Any, versions: Versions, docker_client: Any, tmp_path: Path) -> None:
    pods = pod_sets(versions.pipeline, versions.v1, 2, "--ssd", "local-pv")
    pods.up("--param", WORDFREQ_PARAM)
    before = pods.status("--wait", "--timeout", "180")
    assert [(s["phase"], s["update"], s["restarts"]) for s in before] == [("Complete", "Updated", 0)] * 2
    assert before[0]["image"] == versions.v1 and before[0]["digest"].startswith(versions.repository + "@sha256:")
    sandboxes = [sandbox_id(docker_client, pods, o) for o in (0, 1)]

    report = apply(pods, render(pods, versions.pipeline, versions.v2, "--ssd", "local-pv"))
    assert [p["action"] for p in report["pods"]] == ["updated in place"] * 2
    assert report["revision"] != before[0]["revision"]

    after = pods.status("--wait", "--timeout", "120")
    for status in after:
        assert status["phase"] == "Complete"
        assert (status["image"], status["digest"]) == (versions.v2, f"{versions.repository}@{versions.v2_digest}")
        assert status["revision"] == status["update_revision"] == report["revision"]
        assert status["update"] == "Updated" and status["in_place_update_ready"] is True
        assert status["restarts"] == 1  # an in-place update restarts the container once
        assert status["last_update"]["kind"] == "in-place"
        # The new runtime found v1's journal in shm: only report ran. v1, complete, had freed from shm what its
        # checkpoints hold (a held pod keeps no memory it no longer needs): report's inputs came from the SSD.
        assert status["run"]["runs"] == 2
        assert status["run"]["started"] == ["report"]
        assert sorted(status["run"]["reused"]) == sorted(UPSTREAM)
        assert status["run"]["inputs"] == {"report": {"counts": "ssd", "linestats": "ssd"}}
        assert status["run"]["restored"] == {"count/counts": "ssd", "linestats/linestats": "ssd"}
        assert_right(status, versions.pipeline, tmp_path)
    assert [sandbox_id(docker_client, pods, o) for o in (0, 1)] == sandboxes  # the same pods: shm kept
    # Highest ordinal first, one at a time (maxUnavailable 1): pod 0 began after pod 1 was ready again.
    first, second = after[1]["last_update"], after[0]["last_update"]
    assert second["started_at"] >= first["ready_at"]


def test_statefulset_recreates_the_pod_and_runs_the_changed_step_from_the_ssd(
        pod_sets: Any, versions: Versions, docker_client: Any, tmp_path: Path) -> None:
    pods = pod_sets(versions.pipeline, versions.v1, 1, "--ssd", "local-pv", "--flavor", "statefulset")
    pods.up("--param", WORDFREQ_PARAM)
    assert pods.status("--wait", "--timeout", "180")[0]["phase"] == "Complete"
    sandbox = sandbox_id(docker_client, pods, 0)

    report = apply(pods, render(pods, versions.pipeline, versions.v2, "--ssd", "local-pv", "--flavor", "statefulset"))
    assert [p["action"] for p in report["pods"]] == ["recreated"]
    assert "plain StatefulSet recreates" in report["pods"][0]["why"]  # says why not in place

    status = pods.status("--wait", "--timeout", "120")[0]
    assert status["phase"] == "Complete" and status["image"] == versions.v2
    assert status["update"] == "Updated" and status["in_place_update_ready"] is None  # no Kruise gate
    assert status["restarts"] == 0 and status["last_update"]["kind"] == "recreate"
    assert sandbox_id(docker_client, pods, 0) != sandbox  # a new pod: shm lost
    assert status["run"]["runs"] == 1  # the journal lived in the old shm
    assert status["run"]["started"] == ["report"]
    assert status["run"]["inputs"] == {"report": {"counts": "ssd", "linestats": "ssd"}}
    assert status["run"]["restored"] == {"count/counts": "ssd", "linestats/linestats": "ssd"}
    assert_right(status, versions.pipeline, tmp_path)


def test_an_update_while_count_runs_stops_it_in_the_grace_period_and_runs_it_again_under_the_new_image(
        pod_sets: Any, versions: Versions, docker_client: Any, tmp_path: Path) -> None:
    pods = pod_sets(versions.pipeline, versions.v1, 1, "--ssd", "local-pv")
    gate = pods.claim("pv", 0) / "gates" / "hold-count"
    gate.parent.mkdir(parents=True)
    gate.touch()
    pods.up("--param", WORDFREQ_PARAM)
    pods.wait(0, lambda p: p["run"]["steps"].get("count") == "running", "count running under v1", timeout=180)
    workload = yaml.safe_load((pods.rendered / "statefulset.yaml").read_text())
    grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]

    rendered = render(pods, versions.pipeline, versions.v2, "--ssd", "local-pv")
    applied_at = time.time()
    report = apply(pods, rendered)
    assert [p["action"] for p in report["pods"]] == ["updated in place"]

    held = pods.wait(0, lambda p: p["run"]["runs"] == 2 and p["run"]["steps"].get("count") == "running",
                     "count running again under v2")
    assert held["image"] == versions.v2 and held["restarts"] == 1
    assert held["run"]["started"] == ["count"]
    assert held["run"]["inputs"]["count"] == {"tokens": "shm", "vocab": "shm"}  # committed upstream kept
    assert sorted(held["run"]["reused"]) == ["generate", "linestats", "tokenize"]
    # The first run saw count stopped (SIGTERM) within the pod's grace period, and ended terminated.
    code, text = docker_client.containers.get(pods.container(0, "sandbox")).exec_run(
        ["cat", f"{contract.DEFAULT_SHM_DIR}/wordfreq/shard-0/{contract.RUN_DIR_NAME}/{contract.JOURNAL_FILE}"])
    assert code == 0
    entries = parse_text(text.decode())
    first_run = entries[0]["run"]
    stopped = [e for e in entries if e["run"] == first_run and e.get("step") == "count" and e.get("to") == "stopped"]
    assert stopped and stopped[0]["ts"] - applied_at < grace
    ends = [e for e in entries if e["run"] == first_run and e["event"] == contract.Event.RUN_END]
    assert ends and ends[0]["status"] == contract.RunStatus.TERMINATED

    gate.unlink()
    status = pods.status("--wait", "--timeout", "120")[0]
    assert status["phase"] == "Complete" and status["run"]["started"] == ["count", "report"]
    assert_right(status, versions.pipeline, tmp_path)
