"""Seeing inside a run: a real Prometheus scrapes `--metrics` of a local run while a step runs; the
liveness probe fails when the runtime's loop is stopped; JSON log lines; step logs kept on the SSD.

The emulated-pod half (a pod's published metrics port, `imagekit pod logs`) is in test_pod_observability.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, Locations, start_imagekit, write_pipeline, write_step
from imagekit_core import contract
from imagekit_deploy.monitoring import LIVENESS_FAILURES, PROBE_PERIOD_SECONDS, PROBE_TIMEOUT_SECONDS
from prometheus_support import free_port, http_get, prometheus_scraping

pytest.importorskip("prometheus_client")

HOLD = """
echo "held: waiting for $GATE"
head -c 2097152 /dev/zero > "$IMAGEKIT_OUT_BLOB"
while [ -e "$GATE" ]; do sleep 0.05; done
echo "released"
"""


def held_pipeline(root: Path, gate: Path) -> Path:
    """hold (writes 2 MiB, waits while `gate` exists) -> use."""
    steps = root / "steps"
    write_step(steps, "hold", HOLD, outputs=["blob"], extra={"env": {"GATE": str(gate)}})
    write_step(steps, "use", 'wc -c < "$IMAGEKIT_IN_BLOB" > "$IMAGEKIT_OUT_SIZE"', inputs=["blob"], outputs=["size"])
    return write_pipeline(root, "observed", ["hold", "use"], results=["size"])


def runtime_argv(pipeline: Path, locations: Locations, *args: str) -> list[str]:
    return [sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), *locations.args(), *args]


def runtime_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO / "runtime"), str(REPO / "core"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered 200")


@pytest.mark.slow
def test_prometheus_scrapes_a_local_run_while_a_step_runs(tmp_path: Path, locations: Locations) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    pipeline = held_pipeline(tmp_path / "pipeline", gate)
    port = free_port()
    run = start_imagekit("run", pipeline, "--local", *locations.args(), "--metrics", f"127.0.0.1:{port}")
    try:
        with prometheus_scraping([f"127.0.0.1:{port}"], tmp_path / "prometheus") as prometheus:
            running = prometheus.wait_for('imagekit_step_state{state="running"} == 1',
                                          lambda result: [r["metric"]["step"] for r in result] == ["hold"])
            assert running[0]["metric"]["job"] == "imagekit"
            used = prometheus.wait_for("imagekit_shm_used_bytes", lambda result: len(result) == 1)
            assert float(used[0]["value"][1]) >= 2 * 1024 * 1024  # hold's 2 MiB are in shm
            limit = prometheus.query("imagekit_shm_limit_bytes")
            assert 0 < float(limit[0]["value"][1]) <= 256 * 1024 * 1024  # the pipeline's shm, or less
            info = prometheus.query("imagekit_run_info")
            assert info[0]["metric"]["pipeline"] == "observed" and info[0]["metric"]["shard"] == "0"
            gate.unlink()  # the run ends at once, and its metrics with it
    finally:
        if gate.exists():
            gate.unlink()
        _out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err[-3000:]


def test_metrics_are_off_unless_asked_and_need_prometheus_client(tmp_path: Path, locations: Locations) -> None:
    pipeline = held_pipeline(tmp_path / "pipeline", tmp_path / "no-gate")
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "prometheus_client.py").write_text("raise ImportError('not installed here')\n")
    env = runtime_env(PYTHONPATH=os.pathsep.join([str(hidden), str(REPO / "runtime")]))
    without = subprocess.run(runtime_argv(pipeline, locations, "--metrics", f"127.0.0.1:{free_port()}"),
                             capture_output=True, text=True, env=env, timeout=60)
    assert without.returncode == 3
    assert without.stderr.strip().count("\n") == 0 and "prometheus_client" in without.stderr
    plain = subprocess.run(runtime_argv(pipeline, locations), capture_output=True, text=True, env=env, timeout=60)
    assert plain.returncode == 0, plain.stderr[-2000:]


def test_liveness_fails_within_its_timeout_when_the_loop_is_stopped(tmp_path: Path, locations: Locations) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    pipeline = held_pipeline(tmp_path / "pipeline", gate)
    port = free_port()
    runtime = subprocess.Popen(runtime_argv(pipeline, locations, "--metrics", f"127.0.0.1:{port}"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=runtime_env())
    healthz = f"http://127.0.0.1:{port}{contract.HEALTHZ_PATH}"
    try:
        wait_healthy(healthz)
        assert http_get(f"http://127.0.0.1:{port}{contract.READYZ_PATH}")[0] == 200
        os.kill(runtime.pid, signal.SIGSTOP)  # the conductor: its loop, and everything else of the process
        started = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError, OSError)):
            urllib.request.urlopen(healthz, timeout=PROBE_TIMEOUT_SECONDS).read()  # what the kubelet's probe does
        failed_after = time.monotonic() - started
        assert failed_after <= PROBE_TIMEOUT_SECONDS + 1
        # The kubelet restarts the container after LIVENESS_FAILURES such failures, PROBE_PERIOD_SECONDS apart.
        assert LIVENESS_FAILURES * PROBE_PERIOD_SECONDS >= contract.HEARTBEAT_STALE_SECONDS
        os.kill(runtime.pid, signal.SIGCONT)
        wait_healthy(healthz)  # the loop turns again
    finally:
        os.kill(runtime.pid, signal.SIGCONT)
        if gate.exists():
            gate.unlink()
        _out, err = runtime.communicate(timeout=60)
    assert runtime.returncode == 0, err[-3000:]


def test_json_logs_and_step_logs_kept_on_the_ssd(tmp_path: Path, locations: Locations) -> None:
    pipeline = held_pipeline(tmp_path / "pipeline", tmp_path / "no-gate")
    done = subprocess.run(runtime_argv(pipeline, locations), capture_output=True, text=True, timeout=60,
                          env=runtime_env(**{contract.LOG_FORMAT: contract.LOG_FORMAT_JSON}))
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and all(set(line) == {"time", "level", "step", "message"} for line in lines)
    assert {"step": "hold", "message": "released", "level": "info"}.items() <= \
        next(line for line in lines if line["step"] == "hold" and line["message"] == "released").items()
    assert any(line["step"] == "" and "completed" in line["message"] for line in lines)  # the runtime's own
    kept = locations.ssd / "observed" / "shard-0" / contract.LOGS_DIR / "hold.log"
    assert kept.read_text().splitlines() == [f"held: waiting for {tmp_path / 'no-gate'}", "released"]
    text = subprocess.run(runtime_argv(pipeline, locations, "--force"), capture_output=True, text=True, timeout=60,
                          env=runtime_env(**{contract.LOG_FORMAT: "text"}))
    assert text.returncode == 0 and "[hold] released" in text.stderr and text.stdout == ""
    bad = subprocess.run(runtime_argv(pipeline, locations), capture_output=True, text=True, timeout=60,
                         env=runtime_env(**{contract.LOG_FORMAT: "yaml"}))
    assert bad.returncode == 2 and contract.LOG_FORMAT in bad.stderr
