"""The run served to the outside: `Monitor` feeds a LiveRun from the journal and a Health from the conductor's
heartbeat, and with `--metrics ADDR` serves Prometheus metrics on /metrics, and /healthz and /readyz, from a
thread of the runtime.

main.run_pipeline hands `listen` to the journal and `health.beat` to the conductor's loop, so the conductor
knows nothing of metrics; the server outlives the run while a complete shard holds. prometheus_client is
imported only here, and only when metrics are asked for: a runtime without it runs as before unless
--metrics is given, and then stops at once with exit 3. Metric names and labels are listed in docs/deploy.md.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from imagekit_core import contract
from imagekit_core.contract import Event
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.spec import PipelineSpec

from ..layout import RunLayout
from ..states import StepState
from .live_run import HANDOFF_BUCKETS, Health, LiveRun, Phase, RunShape, Snapshot

log = logging.getLogger("imagekit.runtime")


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) of `--metrics`: `9464` is loopback only (127.0.0.1), `127.0.0.1:9464` or `[::1]:9464` that
    host, and `:9464` (the pod form: the kubelet's probes and Prometheus come from outside) every interface."""
    if ":" not in text:
        text = f"127.0.0.1:{text}"
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise UsageError(f"--metrics {text!r}: not an address; use PORT or HOST:PORT, e.g. :{contract.METRICS_PORT}")
    return host, number


def _families(snapshot: Snapshot) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    info = GaugeMetricFamily("imagekit_run_info", "The run this runtime drives", labels=["pipeline", "run", "shard"])
    if snapshot.run_info:
        info.add_metric([snapshot.run_info["pipeline"], snapshot.run_info["run"], snapshot.run_info["shard"]], 1)
    yield info
    state = GaugeMetricFamily("imagekit_step_state", "1 for the state each step is in", labels=["step", "state"])
    for step, current in snapshot.step_state.items():
        state.add_metric([step, current], 1)
    yield state
    duration = GaugeMetricFamily("imagekit_step_duration_seconds",
                                 "Wall time of the step's current or last attempt", labels=["step"])
    for step, seconds in snapshot.step_duration.items():
        duration.add_metric([step], seconds)
    yield duration
    attempts = CounterMetricFamily("imagekit_step_attempts", "Attempts started, per step", labels=["step"])
    for step, count in snapshot.step_attempts.items():
        attempts.add_metric([step], count)
    yield attempts
    data = GaugeMetricFamily("imagekit_data_bytes", "Bytes of each data item, per tier", labels=["data", "tier"])
    for (name, tier), size in sorted(snapshot.data_bytes.items()):
        data.add_metric([name, tier], size)
    yield data
    yield GaugeMetricFamily("imagekit_shm_used_bytes", "Bytes in use on the shm filesystem",
                            value=snapshot.shm_used_bytes)
    yield GaugeMetricFamily("imagekit_shm_limit_bytes", "The pipeline's shm budget", value=snapshot.shm_limit_bytes)
    pending = GaugeMetricFamily("imagekit_checkpoint_pending_bytes", "Committed bytes not yet checkpointed",
                                labels=["tier"])
    for tier, size in sorted(snapshot.checkpoint_pending.items()):
        pending.add_metric([tier], size)
    yield pending
    bounds = [*(f"{bound:g}" for bound in HANDOFF_BUCKETS), "+Inf"]
    yield HistogramMetricFamily("imagekit_handoff_seconds", "From a step's last input committed to the step running",
                                buckets=list(zip(bounds, snapshot.handoff_buckets, strict=True)),
                                sum_value=snapshot.handoff_sum)


class _ViewCollector:
    def __init__(self, view: LiveRun) -> None:
        self.view = view

    def collect(self) -> Iterator[Any]:
        yield from _families(self.view.snapshot())


@dataclass
class MetricsServer:
    """Serves until close(); its thread is a daemon, so a process that exits never waits for it."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(address: str, view: LiveRun, health: Health) -> MetricsServer:
    """Listen on `address` (see parse_address) and serve in a thread."""
    host, port = parse_address(address)
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    except ImportError:
        raise EnvironmentMissing("--metrics needs the Python package prometheus_client, which this runtime lacks: "
                                 "install it (pip install prometheus-client, or Debian's python3-prometheus-client) "
                                 "or run without --metrics") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ViewCollector(view))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
            path = self.path.split("?", 1)[0]
            if path == contract.METRICS_PATH:
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in (contract.HEALTHZ_PATH, contract.READYZ_PATH):
                ok, text = health.liveness() if path == contract.HEALTHZ_PATH else health.readiness()
                self._reply(200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - scrapes are not worth a log line
            pass

    try:
        server = _bind(host, port, Handler)
    except OSError as exc:
        raise EnvironmentMissing(f"--metrics {address}: cannot listen: {exc.strerror}") from None
    if not host:
        log.info("metrics, /healthz and /readyz on every interface, port %d (--metrics %s; PORT alone is loopback)",
                 server.server_address[1], address)
    thread = threading.Thread(target=server.serve_forever, name="imagekit-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)


def _bind(host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    class Server(ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host or "0.0.0.0", port), handler)


@dataclass
class Monitor:
    view: LiveRun = field(default_factory=LiveRun)
    health: Health = field(default_factory=Health)
    server: MetricsServer | None = None

    @classmethod
    def serving(cls, address: str | None) -> Monitor:
        """A monitor; with an address, serving /metrics, /healthz and /readyz there (exit 3 without prometheus_client)."""
        monitor = cls()
        if address is not None:
            monitor.server = serve(address, monitor.view, monitor.health)
        return monitor

    def start(self, spec: PipelineSpec, layout: RunLayout) -> None:
        self.view.start(run_shape(spec, layout))

    def listen(self, entry: dict[str, Any]) -> None:
        """A journal entry: into the view, and the run's phase into the health."""
        self.view.observe(entry)
        if entry.get("event") == Event.TRANSITION and entry.get("to") == StepState.STOPPED.value:
            self.health.set_phase(Phase.STOPPING)
        elif entry.get("event") == Event.RUN_END:
            self.health.set_phase(Phase.DONE)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None


def run_shape(spec: PipelineSpec, layout: RunLayout) -> RunShape:
    tiers = [name for name, base in (("ssd", layout.ssd_dir), ("pv", layout.pv_dir)) if base is not None]
    producers = spec.producer_of()
    return RunShape(
        pipeline=spec.name, steps=tuple(step.name for step in spec.steps),
        inputs={step.name: tuple(step.inputs) for step in spec.steps}, producers=producers,
        checkpoint_tiers={data: tuple(t for t in tiers if t == "ssd" or data in spec.checkpoint.major)
                          for data in producers},
        shm_dir=layout.shm_dir, shm_limit_bytes=spec.shm_bytes)
