"""imagekit's rules for what lets a cluster look inside the pod: probes and scrape annotations that
reach a port the pipeline container declares, and the prometheus-operator PodMonitor.

No schema of the PodMonitor CRD is available offline, so its shape is checked here: the fields
prometheus-operator's monitoring.coreos.com/v1 defines for what imagekit renders, a selector that
matches the pods, and endpoints that name the metrics port.
"""
from __future__ import annotations

import re
from typing import Any

from ..monitoring import PODMONITOR_API_VERSION
from ..renderer import Rendering
from .fields import Found, as_dict, as_list, get, selector_matches

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
PODMONITOR_SPEC_FIELDS = {
    "selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels", "sampleLimit",
    "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit", "attachMetadata",
}
ENDPOINT_FIELDS = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "honorLabels",
    "honorTimestamps", "relabelings", "metricRelabelings", "basicAuth", "bearerTokenSecret", "authorization",
    "oauth2", "tlsConfig", "followRedirects", "enableHttp2", "filterRunning", "proxyUrl",
}
DURATION_RE = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")


def _port_names(container: dict[str, Any]) -> tuple[set[str], set[int]]:
    ports = [as_dict(port) for port in as_list(container.get("ports"))]
    return ({p["name"] for p in ports if isinstance(p.get("name"), str)},
            {p["containerPort"] for p in ports if isinstance(p.get("containerPort"), int)})


def _declared(port: Any, names: set[str], numbers: set[int]) -> bool:
    if isinstance(port, str) and not port.isdigit():
        return port in names
    return isinstance(port, int | str) and int(port) in numbers


def probe_rules(path: str, container: dict[str, Any], pod_metadata: dict[str, Any]) -> Found:
    """Each HTTP probe, and the prometheus.io/port annotation, reach a port the container declares."""
    names, numbers = _port_names(container)
    problems: Found = []
    for probe in PROBES:
        port = get(container, probe, "httpGet", "port")
        if port is not None and not _declared(port, names, numbers):
            problems.append((f"{path}.{probe}.httpGet.port", f"{port!r} is not a port of the container, "
                             "so the probe always fails (fix: name a port in ports, e.g. metrics)"))
    annotated = get(pod_metadata, "annotations", "prometheus.io/port")
    if annotated is not None and not _declared(str(annotated), names, numbers):
        problems.append(("spec.template.metadata.annotations", f"prometheus.io/port {annotated!r} is not a port "
                         "of the pipeline container"))
    return problems


def _endpoint_rules(index: int, endpoint: Any, names: set[str]) -> Found:
    where = f"spec.podMetricsEndpoints[{index}]"
    if not isinstance(endpoint, dict):
        return [(where, "must be a mapping")]
    problems: Found = [(f"{where}.{key}", "is not a PodMetricsEndpoint field") for key in sorted(set(endpoint) - ENDPOINT_FIELDS)]
    port = endpoint.get("port")
    if port is None and endpoint.get("targetPort") is None:
        problems.append((where, "names no port: set port to the container port's name (metrics)"))
    elif port is not None and (not isinstance(port, str) or port not in names):
        problems.append((f"{where}.port", f"{port!r} names no port of the pipeline container"))
    path = endpoint.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        problems.append((f"{where}.path", f"{path!r} must be an absolute URL path such as /metrics"))
    for key in ("interval", "scrapeTimeout"):
        value = endpoint.get(key)
        if value is not None and (not isinstance(value, str) or not DURATION_RE.match(value)):
            problems.append((f"{where}.{key}", f"{value!r} is not a Prometheus duration such as 15s"))
    if endpoint.get("scheme") not in (None, "http", "https"):
        problems.append((f"{where}.scheme", f"{endpoint.get('scheme')!r} must be http or https"))
    return problems


def pod_monitor_rules(body: dict[str, Any], rendering: Rendering, pipeline: dict[str, Any] | None) -> Found:
    """The PodMonitor: its own shape, pods it selects (the workload's), and the port it scrapes."""
    if body.get("apiVersion") != PODMONITOR_API_VERSION:
        return [("apiVersion", f"{body.get('apiVersion')!r}: a PodMonitor is {PODMONITOR_API_VERSION}")]
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "is required")]
    problems: Found = [(f"spec.{key}", "is not a PodMonitor field") for key in sorted(set(spec) - PODMONITOR_SPEC_FIELDS)]
    template = rendering.pod_template()
    workload_namespace = get(rendering.workload().body, "metadata", "namespace")
    if not isinstance(spec.get("selector"), dict):
        problems.append(("spec.selector", "is required: an empty selector would scrape every pod of the namespace"))
    elif not selector_matches(spec["selector"], as_dict(get(template, "metadata", "labels"))):
        problems.append(("spec.selector", "does not match the pipeline's pod labels"))
    if get(body, "metadata", "namespace") != workload_namespace and spec.get("namespaceSelector") is None:
        problems.append(("metadata.namespace", "differs from the StatefulSet's and no namespaceSelector reaches it"))
    endpoints = spec.get("podMetricsEndpoints")
    if not isinstance(endpoints, list) or not endpoints:
        return problems + [("spec.podMetricsEndpoints", "needs at least one endpoint")]
    names, _numbers = _port_names(pipeline or {})
    for index, endpoint in enumerate(endpoints):
        problems += _endpoint_rules(index, endpoint, names)
    return problems
