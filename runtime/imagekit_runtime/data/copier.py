"""Copies committed data out of shm in the background, so the next step is not held up.

Used for results (whole, to the results directory) and for checkpoints. Each
job writes into a temporary name beside its destination and renames it into
place when complete, so a destination is whole or absent.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .seal import Tampered

log = logging.getLogger("imagekit.runtime")


@dataclass
class CopyJob:
    description: str
    owner: tuple[str, str]  # (step, data) whose shm copy must stay until the job ends
    action: Callable[[], None]


@dataclass
class Copier:
    """One worker thread; `pending(step, data)` tells the conductor not to free that item yet."""

    errors: list[str] = field(default_factory=list)
    tampered: list[str] = field(default_factory=list)  # copies refused because the data changed after commit

    def __post_init__(self) -> None:
        self._jobs: queue.Queue[CopyJob | None] = queue.Queue()
        self._pending: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name="imagekit-copier", daemon=True)
        self._thread.start()

    def submit(self, job: CopyJob) -> None:
        with self._lock:
            self._pending[job.owner] = self._pending.get(job.owner, 0) + 1
        self._jobs.put(job)

    def pending(self, step: str, data: str) -> bool:
        with self._lock:
            return self._pending.get((step, data), 0) > 0

    def busy(self) -> bool:
        with self._lock:
            return any(self._pending.values())

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job.action()
            except Tampered as exc:  # not a copy that failed: the run fails (conductor)
                log.error("error: %s: %s", job.description, exc)
                self.tampered.append(f"{job.description}: {exc}")
            except Exception as exc:  # a failed copy must not kill the run; it is reported
                message = f"{job.description}: {exc}"
                log.warning("warning: %s", message)
                self.errors.append(message)
            finally:
                with self._lock:
                    self._pending[job.owner] -= 1
