"""The run as seen from outside: the LiveRun the metrics read, the Health the probes ask, and the server.

main.run_pipeline hands `listen` to the journal and `health.beat` to the conductor's loop, so the
conductor knows nothing of metrics; the server (with --metrics) outlives the run while a complete
shard holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagekit_core.contract import Event
from imagekit_core.spec import PipelineSpec

from ..layout import RunLayout
from ..states import StepState
from .health import Health, Phase
from .live_run import LiveRun, RunShape
from .metrics import MetricsServer, serve


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
