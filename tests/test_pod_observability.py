"""An emulated pod seen from outside: a real Prometheus scrapes its published metrics port while a step
runs, its probes answer, and `imagekit pod logs` shows the container's output and a step's log, the
latter still after the pod is gone (kept on the SSD)."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_pods import GATE_PIPELINE
from imagekit_core import contract
from imagekit_deploy.emulator.state import LABEL_SET, StateDir
from prometheus_support import http_get, prometheus_scraping

pytestmark = [pytest.mark.docker, pytest.mark.slow]




def sandbox_port(docker_client: Any, pod: str, state: Path) -> int:
    sandbox = docker_client.containers.get(f"{pod}.sandbox.{StateDir(state).scope}")
    bindings = sandbox.attrs["NetworkSettings"]["Ports"][f"{contract.METRICS_PORT}/tcp"]
    assert bindings[0]["HostIp"] == "127.0.0.1"
    return int(bindings[0]["HostPort"])


def test_prometheus_scrapes_an_emulated_pod_and_pod_logs_reads_it(pod_gate_image: str, docker_client: Any,
                                                                   tmp_path: Path) -> None:
    name = f"po-{uuid.uuid4().hex[:8]}"
    rendered, state = tmp_path / "rendered", tmp_path / "state"
    result = imagekit("deploy", "render", GATE_PIPELINE, "--image", pod_gate_image, "--replicas", "1", "--name", name,
                      "--ssd", "local-pv", "--pod-monitor", "-d", rendered)
    assert result.returncode == 0, result.stderr
    assert (rendered / "podmonitor.yaml").is_file()
    gate = state / "claims" / f"pv-{name}-0" / "gates" / "hold-total"
    gate.parent.mkdir(parents=True)
    gate.touch()
    pod = f"{name}-0"
    try:
        up = imagekit("pod", "up", rendered, "--state-dir", state, "--param", "COUNT=3000", timeout=240)
        assert up.returncode == 0, up.stderr[-3000:]
        port = sandbox_port(docker_client, pod, state)
        with prometheus_scraping([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prometheus:
            prometheus.wait_for('imagekit_step_state{step="total",state="running"} == 1', lambda r: len(r) == 1,
                                timeout=120)
            used = prometheus.wait_for("imagekit_shm_used_bytes", lambda r: len(r) == 1)
            assert float(used[0]["value"][1]) > 0
            info = prometheus.query("imagekit_run_info")
            assert info[0]["metric"]["pipeline"] == "pod-gate" and info[0]["metric"]["shard"] == "0"
        assert http_get(f"http://127.0.0.1:{port}{contract.HEALTHZ_PATH}")[0] == 200
        assert http_get(f"http://127.0.0.1:{port}{contract.READYZ_PATH}")[0] == 200

        logs = imagekit("pod", "logs", pod, "--state-dir", state)
        assert logs.returncode == 0 and "running gen" in logs.stdout, logs.stdout[-2000:] + logs.stderr
        step = imagekit("pod", "logs", "0", "--step", "gen", "--state-dir", state)
        assert step.stdout == "gen: 3000 numbers from 1\n", step.stderr
        missing = imagekit("pod", "logs", "nope", "--state-dir", state)
        assert missing.returncode == 2 and pod in missing.stderr
        gate.unlink()
        done = imagekit("pod", "status", "--wait", "--timeout", "120", "--state-dir", state)
        assert done.returncode == 0, done.stderr[-2000:]
        followed = imagekit("pod", "logs", pod, "--step", "gen", "-f", "--state-dir", state, timeout=60)
        assert followed.stdout == "gen: 3000 numbers from 1\n"  # -f ends: the pod is complete

        assert imagekit("pod", "down", "--state-dir", state, "--grace-period", "0").returncode == 0
        # The post-mortem outlives the pod: the SSD claim is retained, the step's log in it.
        kept = state / "claims" / f"ssd-{name}-0" / "pod-gate" / "shard-0" / contract.LOGS_DIR / "gen.log"
        assert kept.read_text() == "gen: 3000 numbers from 1\n"
    finally:
        if gate.exists():
            gate.unlink()
        if state.exists():
            imagekit("pod", "down", "--state-dir", state, "--grace-period", "0", "--delete-data")
        for container in docker_client.containers.list(all=True, filters={"label": f"{LABEL_SET}={name}"}):
            container.remove(force=True)
