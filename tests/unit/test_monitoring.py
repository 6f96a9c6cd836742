"""The run view (fed by journal entries), the health answers, and the metrics server, in-process."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from imagekit_core import contract
from imagekit_core.contract import Event
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_runtime.observe.live_run import Health, LiveRun, Phase, RunShape
from imagekit_runtime.observe.metrics import Monitor, parse_address, serve


def shape(tmp_path: Path) -> RunShape:
    return RunShape(pipeline="p", steps=("a", "b"), inputs={"a": (), "b": ("x",)}, producers={"x": "a", "y": "b"},
                    checkpoint_tiers={"x": ("ssd", "pv"), "y": ("ssd",)}, shm_dir=tmp_path, shm_limit_bytes=1 << 20)


def transition(step: str, old: str, new: str, ts: float, **fields: object) -> dict[str, object]:
    return {"event": Event.TRANSITION.value, "step": step, "from": old, "to": new, "ts": ts, **fields}


def test_the_view_follows_a_run_through_its_journal(tmp_path: Path) -> None:
    view = LiveRun()
    view.start(shape(tmp_path))
    view.observe({"event": Event.RUN_START.value, "run": "r1", "pipeline": "p", "shard": 3, "ts": 1.0})
    view.observe(transition("a", "waiting", "ready", 1.0))
    view.observe(transition("a", "ready", "running", 2.0))
    view.observe(transition("a", "running", "committing", 5.0))
    view.observe(transition("a", "committing", "committed", 5.5, outputs={"x": 100}))
    view.observe(transition("b", "ready", "running", 5.75))
    snap = view.snapshot()
    assert snap.run_info == {"pipeline": "p", "run": "r1", "shard": "3"}
    assert snap.step_state == {"a": "committed", "b": "running"}
    assert snap.step_duration["a"] == 3.0 and snap.step_attempts == {"a": 1, "b": 1}
    assert snap.data_bytes == {("x", "shm"): 100}
    assert snap.checkpoint_pending == {"ssd": 100, "pv": 100}
    assert snap.handoff_buckets[-1] == 1 and snap.handoff_sum == 0.25
    view.observe({"event": Event.CHECKPOINTED.value, "step": "a", "data": "x", "tier": "ssd", "path": "/s"})
    view.observe({"event": Event.FREED.value, "step": "a", "data": "x", "bytes": 100})
    snap = view.snapshot()
    assert snap.data_bytes == {("x", "ssd"): 100}
    assert snap.checkpoint_pending == {"ssd": 0, "pv": 100}
    assert snap.shm_limit_bytes <= 1 << 20


def test_a_retry_counts_an_attempt_but_no_second_handoff(tmp_path: Path) -> None:
    view = LiveRun()
    view.start(shape(tmp_path))
    view.observe(transition("a", "ready", "running", 1.0))
    view.observe(transition("a", "running", "backoff", 2.0))
    view.observe(transition("a", "ready", "running", 3.0))
    assert view.snapshot().step_attempts == {"a": 1 + 1}
    assert view.snapshot().handoff_buckets[-1] == 0  # a has no inputs: no handoff at all


def test_health_is_stale_when_the_loop_stops_beating() -> None:
    health = Health(stale_after=0.05)
    assert not health.liveness()[0] and not health.readiness()[0]  # starting
    health.beat()
    assert health.liveness()[0] and health.readiness()[0]
    time.sleep(0.1)
    ok, text = health.liveness()
    assert not ok and "not beaten" in text
    health.set_phase(Phase.DONE)  # a complete shard holding: alive, no loop
    assert health.liveness()[0] and health.readiness()[0]
    health.set_phase(Phase.STOPPING)
    assert not health.readiness()[0]


def test_run_end_and_stopped_steps_set_the_phase() -> None:
    monitor = Monitor()
    monitor.health.beat()
    monitor.listen(transition("a", "running", "stopped", 1.0))
    assert monitor.health.phase is Phase.STOPPING
    monitor.listen({"event": Event.RUN_END.value, "status": "terminated"})
    assert monitor.health.readiness() == (True, Phase.DONE.value)


@pytest.mark.parametrize(("text", "expected"), [(":9464", ("", 9464)), ("9464", ("127.0.0.1", 9464)),
                                                ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:80", ("::1", 80))])
def test_metrics_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "host", ":99999", "a:b"])
def test_bad_metrics_addresses_name_the_fix(text: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_address(text)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_server_answers_metrics_and_probes(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    view, health = LiveRun(), Health()
    view.start(shape(tmp_path))
    view.observe(transition("a", "ready", "running", time.time()))
    server = serve("127.0.0.1:0", view, health)
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, text = get(base + contract.METRICS_PATH)
        assert status == 200
        assert 'imagekit_step_state{state="running",step="a"} 1.0' in text
        assert 'imagekit_step_attempts_total{step="a"} 1.0' in text
        for name in ("imagekit_shm_used_bytes", "imagekit_shm_limit_bytes", "imagekit_handoff_seconds_bucket",
                     "imagekit_checkpoint_pending_bytes", "imagekit_data_bytes", "imagekit_run_info",
                     "imagekit_step_duration_seconds"):
            assert name in text
        assert get(base + contract.HEALTHZ_PATH)[0] == 503  # no beat yet
        health.beat()
        assert get(base + contract.HEALTHZ_PATH)[0] == 200
        assert get(base + contract.READYZ_PATH)[0] == 200
        assert get(base + "/nothing")[0] == 404
    finally:
        server.close()


def test_without_prometheus_client_metrics_is_an_environment_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(EnvironmentMissing, match="prometheus_client") as caught:
        serve("127.0.0.1:0", LiveRun(), Health())
    assert caught.value.exit_code == 3
