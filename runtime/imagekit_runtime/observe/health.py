"""Is the runtime alive, and is it ready: what /healthz and /readyz answer.

The conductor's loop calls `beat()` on every turn; /healthz fails once it has not beaten for
`stale_after` seconds (a hung or stopped loop), so the liveness probe restarts the container.
Before the loop starts (recovery, restores) the startup probe gives it time; after the run
(holding a complete shard) the runtime stays healthy.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum

from imagekit_core import contract


class Phase(StrEnum):
    STARTING = "starting"   # loading, recovering, restoring: no beat yet
    RUNNING = "running"     # the conductor's loop beats
    STOPPING = "stopping"   # the run is ending (SIGTERM, a failure)
    DONE = "done"           # the run is over; the process holds or exits


@dataclass
class Health:
    stale_after: float = contract.HEARTBEAT_STALE_SECONDS
    phase: Phase = Phase.STARTING
    last_beat: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self) -> None:
        with self._lock:
            self.last_beat = time.monotonic()
            if self.phase is Phase.STARTING:
                self.phase = Phase.RUNNING

    def set_phase(self, phase: Phase) -> None:
        with self._lock:
            self.phase = phase

    def liveness(self) -> tuple[bool, str]:
        with self._lock:
            if self.phase is Phase.STARTING:
                return False, "starting: the conductor's loop has not begun"
            if self.phase is not Phase.RUNNING:
                return True, f"ok ({self.phase.value})"
            age = time.monotonic() - self.last_beat
            if age > self.stale_after:
                return False, f"the conductor's loop has not beaten for {age:.1f}s (limit {self.stale_after:g}s)"
            return True, f"ok (last beat {age:.2f}s ago)"

    def readiness(self) -> tuple[bool, str]:
        with self._lock:
            ready = self.phase in (Phase.RUNNING, Phase.DONE)
            return ready, self.phase.value
