"""Probes, the metrics port and annotations in rendered pods; the PodMonitor of --pod-monitor and the
rules that check it (no PodMonitor schema offline: imagekit's own), in-process."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from imagekit_core import contract
from imagekit_core.spec import load_pipeline
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.monitoring import PODMONITOR_API_VERSION, startup_failure_threshold
from imagekit_deploy.renderer import Manifest, Rendering, render
from imagekit_deploy.settings import Flavor, resolve_settings
from imagekit_deploy.validate import validate_rendering

WORDFREQ = Path(__file__).resolve().parents[2] / "pipelines" / "wordfreq"
IMAGE = "registry.example.com/imagekit/wordfreq:1.0"


def rendering(flavor: Flavor = Flavor.kruise, pod_monitor: bool = True) -> Rendering:
    spec = load_pipeline(WORDFREQ)
    return render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, flavor=flavor, pod_monitor=pod_monitor)))


def container(r: Rendering) -> dict[str, Any]:
    container: dict[str, Any] = r.pod_template()["spec"]["containers"][0]
    return container


def problems(r: Rendering) -> list[str]:
    return [f"{p.resource} {p.path}: {p.message}" for p in validate_rendering(r).problems]


@pytest.mark.parametrize("flavor", list(Flavor))
def test_the_pod_serves_metrics_and_is_probed_on_them(flavor: Flavor) -> None:
    r = rendering(flavor)
    pipeline = container(r)
    assert pipeline["args"] == ["--metrics", f":{contract.METRICS_PORT}"]
    assert pipeline["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    assert pipeline["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert pipeline["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert pipeline["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # A stale loop is noticed within HEARTBEAT_STALE_SECONDS; liveness then gives it period x failures more.
    liveness = pipeline["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= contract.HEARTBEAT_STALE_SECONDS
    annotations = r.pod_template()["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "9464", "prometheus.io/path": "/metrics"}
    gates = r.pod_template()["spec"].get("readinessGates", [])
    assert (gates == [{"conditionType": "InPlaceUpdateReady"}]) is (flavor is Flavor.kruise)
    assert problems(r) == []


def test_startup_allows_time_to_restore_shm() -> None:
    spec = load_pipeline(WORDFREQ)
    small = startup_failure_threshold(spec)
    bigger = startup_failure_threshold(type(spec)(**{**spec.__dict__, "shm_bytes": spec.shm_bytes * 100}))
    assert 12 <= small < bigger


def test_pod_monitor_only_when_asked_and_it_selects_the_pods() -> None:
    assert "PodMonitor" not in [m.kind for m in rendering(pod_monitor=False).manifests]
    r = rendering()
    monitor = next(m for m in r.manifests if m.kind == "PodMonitor")
    assert monitor.filename == "podmonitor.yaml" and monitor.api_version == PODMONITOR_API_VERSION
    assert monitor.body["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    labels = r.pod_template()["metadata"]["labels"]
    assert monitor.body["spec"]["selector"]["matchLabels"].items() <= labels.items()
    checked = [c for c in validate_rendering(r).checked if c["resource"].startswith("PodMonitor/")]
    assert checked and checked[0]["checks"]


def mutated(change: Any) -> list[str]:
    base = rendering()
    bodies = [copy.deepcopy(m.body) for m in base.manifests]
    change({b["kind"]: b for b in bodies})
    return problems(Rendering(base.flavor, tuple(Manifest(m.filename, b) for m, b in zip(base.manifests, bodies,
                                                                                        strict=True))))


def endpoint(bodies: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = bodies["PodMonitor"]["spec"]["podMetricsEndpoints"][0]
    return result


def pipeline_of(bodies: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = bodies["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    return result


@pytest.mark.parametrize(("change", "expected"), [
    (lambda b: endpoint(b).update(port="http"), "'http' names no port"),
    (lambda b: endpoint(b).update(interval="15 seconds"), "not a Prometheus duration"),
    (lambda b: endpoint(b).update(path="metrics"), "absolute URL path"),
    (lambda b: endpoint(b).update(portt="metrics"), "portt: is not a PodMetricsEndpoint field"),
    (lambda b: b["PodMonitor"]["spec"].update(selector={"matchLabels": {"app": "other"}}), "does not match"),
    (lambda b: b["PodMonitor"]["spec"].pop("selector"), "selector: is required"),
    (lambda b: b["PodMonitor"]["spec"].update(endpoints=[]), "spec.endpoints: is not a PodMonitor field"),
    (lambda b: b["PodMonitor"]["spec"].update(podMetricsEndpoints=[]), "needs at least one endpoint"),
    (lambda b: b["PodMonitor"].update(apiVersion="monitoring.coreos.com/v1beta1"), "a PodMonitor is"),
    (lambda b: b["PodMonitor"]["metadata"].update(namespace="elsewhere"), "differs from the StatefulSet"),
    (lambda b: pipeline_of(b)["livenessProbe"]["httpGet"].update(port="health"), "livenessProbe.httpGet.port"),
    (lambda b: pipeline_of(b).pop("ports"), "is not a port of the container"),
])
def test_each_monitoring_mistake_is_named(change: Any, expected: str) -> None:
    found = mutated(change)
    assert any(expected in problem for problem in found), found
