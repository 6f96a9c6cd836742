"""What lets a cluster look inside the pod: the metrics port, the probes on the runtime's health
endpoints, the `prometheus.io/*` annotations, and (with --pod-monitor) a prometheus-operator PodMonitor.

The runtime serves all of it with `--metrics :9464` (runtime/imagekit_runtime/metrics.py); the
endpoints' paths and port are the contract's.
"""
from __future__ import annotations

import math
from typing import Any

from imagekit_core import contract
from imagekit_core.spec import PipelineSpec

PODMONITOR_API_VERSION = "monitoring.coreos.com/v1"
PODMONITOR_KIND = "PodMonitor"
SCRAPE_INTERVAL = "15s"
SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(contract.METRICS_PORT),
    "prometheus.io/path": contract.METRICS_PATH,
}

# Liveness: three missed checks 10 s apart, each failing once the loop is stale for HEARTBEAT_STALE_SECONDS.
PROBE_PERIOD_SECONDS = 10
PROBE_TIMEOUT_SECONDS = 2
LIVENESS_FAILURES = 3
READINESS_PERIOD_SECONDS = 5
# Startup (recovery, bringing checkpoints back into shm): a fixed allowance plus shm at a pessimistic rate.
STARTUP_PERIOD_SECONDS = 5
STARTUP_BASE_SECONDS = 60
RESTORE_BYTES_PER_SECOND = 50 * 1024**2


def metrics_args() -> list[str]:
    """Appended to the image's entrypoint (`imagekit_runtime run <pipeline>`)."""
    return ["--metrics", f":{contract.METRICS_PORT}"]


def metrics_port() -> dict[str, Any]:
    return {"name": contract.METRICS_PORT_NAME, "containerPort": contract.METRICS_PORT, "protocol": "TCP"}


def _http(path: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": contract.METRICS_PORT_NAME}}


def startup_failure_threshold(spec: PipelineSpec) -> int:
    seconds = STARTUP_BASE_SECONDS + spec.shm_bytes / RESTORE_BYTES_PER_SECOND
    return max(1, math.ceil(seconds / STARTUP_PERIOD_SECONDS))


def probes(spec: PipelineSpec) -> dict[str, Any]:
    """startupProbe, livenessProbe, readinessProbe of the pipeline container."""
    return {
        "startupProbe": {**_http(contract.HEALTHZ_PATH), "periodSeconds": STARTUP_PERIOD_SECONDS,
                         "timeoutSeconds": PROBE_TIMEOUT_SECONDS, "failureThreshold": startup_failure_threshold(spec)},
        "livenessProbe": {**_http(contract.HEALTHZ_PATH), "periodSeconds": PROBE_PERIOD_SECONDS,
                          "timeoutSeconds": PROBE_TIMEOUT_SECONDS, "failureThreshold": LIVENESS_FAILURES},
        "readinessProbe": {**_http(contract.READYZ_PATH), "periodSeconds": READINESS_PERIOD_SECONDS,
                           "timeoutSeconds": PROBE_TIMEOUT_SECONDS, "failureThreshold": 1},
    }


def pod_monitor(metadata: dict[str, Any], selector: dict[str, str]) -> dict[str, Any]:
    """A PodMonitor selecting the pipeline's pods and scraping their `metrics` port."""
    return {
        "apiVersion": PODMONITOR_API_VERSION,
        "kind": PODMONITOR_KIND,
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "podMetricsEndpoints": [{"port": contract.METRICS_PORT_NAME, "path": contract.METRICS_PATH,
                                     "interval": SCRAPE_INTERVAL}],
        },
    }
