"""The per-file half of a commit, off the critical path: the hard-link check and the size in shm of directory outputs.

A commit checks what it can without a stat per file (sandbox.quick_check) and hands its consumers the
outputs at once; the rest — one lstat per file (sandbox.scan_output): hard links leading out, the blocks
the output takes — runs here, on a thread of its own, after the gates are open. Until its verdict is in,
the step's outputs are *unvetted*: the conductor neither delivers, checkpoints nor frees them, commits no
consumer of them, and does not end the run. A refusal fails the producing step after all (the consumers
already started are stopped); a pass gives the commit record its sizes.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .sandbox import refusal_message, scan_output


@dataclass(frozen=True)
class Verdict:
    step: str
    sizes: dict[str, int]  # data -> bytes it takes in shm (allocated blocks)
    refusal: str | None    # the one-line message the step fails with; None when every output passed


def vet(step: str, outputs: dict[str, Path]) -> Verdict:
    """Walk every output of the step (one lstat per entry): its size, and whether it leads out."""
    sizes: dict[str, int] = {}
    for data, path in outputs.items():
        scan = scan_output(path)
        if scan.problem:
            return Verdict(step, sizes, refusal_message(step, data, scan.problem))
        sizes[data] = scan.allocated
    return Verdict(step, sizes, None)


class Vetting:
    """One worker thread; `wake()` is called after each verdict (the conductor's sleep ends)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._jobs: queue.Queue[tuple[str, dict[str, Path]] | None] = queue.Queue()
        self._lock = threading.Condition()
        self._pending: set[str] = set()
        self._verdicts: dict[str, Verdict] = {}
        self._thread: threading.Thread | None = None

    def submit(self, step: str, outputs: dict[str, Path]) -> None:
        with self._lock:
            self._pending.add(step)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="imagekit-vetting", daemon=True)
            self._thread.start()
        self._jobs.put((step, outputs))

    def pending(self, step: str) -> bool:
        """Submitted, and its verdict not taken yet."""
        with self._lock:
            return step in self._pending

    def busy(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def wait(self, steps: Iterable[str]) -> None:
        """Block until every one of these steps that is pending has its verdict ready (take them with `verdicts`)."""
        wanted = set(steps)
        with self._lock:
            self._lock.wait_for(lambda: not (wanted & self._pending) or wanted & self._pending <= set(self._verdicts))

    def verdicts(self) -> list[Verdict]:
        """The verdicts ready since the last call; their steps are no longer pending."""
        with self._lock:
            ready = list(self._verdicts.values())
            self._verdicts.clear()
            self._pending.difference_update(v.step for v in ready)
        return ready

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            step, outputs = job
            try:
                verdict = vet(step, outputs)
            except Exception as exc:  # the output changed under the walk, or a tree too deep: never trusted
                verdict = Verdict(step, {}, f"step {step}'s outputs could not be checked: {exc}")
            with self._lock:
                self._verdicts[step] = verdict
                self._lock.notify_all()
            self._wake()
