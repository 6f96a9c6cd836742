"""The per-file half of a commit, off the critical path: the hard-link check and the size in shm of directory outputs.

A commit checks what it can without a stat per file (sandbox.quick_check) and hands its consumers the
outputs at once; the rest — one lstat per file (sandbox.scan_output): hard links leading out, the blocks
the output takes — runs here, on a thread of its own, after the gates are open. Until its verdict is in,
the step's outputs are *unvetted*: the conductor neither delivers, checkpoints nor frees them, commits no
consumer of them, and does not end the run. A refusal fails the producing step after all (the consumers
already started are stopped); a pass gives the commit record its sizes and seals (seal.py). The same
thread checks the seals of a step's directory inputs before its commit counts (a file input is checked at
once, by the commit): data changed after its commit refuses the step that read it.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import refusal_message, scan_output
from .seal import Tampered, check, seal


@dataclass(frozen=True)
class Verdict:
    step: str
    sizes: dict[str, int]  # data -> bytes it takes in shm (allocated blocks)
    refusal: str | None    # the one-line message the step fails with; None when every output passed
    seals: dict[str, str] = field(default_factory=dict)  # data -> its seal, once every output passed


@dataclass(frozen=True)
class Job:
    step: str
    outputs: dict[str, Path]                       # data -> where it is committed
    inputs: dict[str, tuple[Path, str]] = field(default_factory=dict)  # what -> (item, its seal): to check


def vet(job: Job) -> Verdict:
    """The step's directory inputs are as sealed; walk every output of the step (one lstat per entry): its size,
    and whether it leads out; then take its seal (a second walk of lstats)."""
    try:
        for what, (item, expected) in job.inputs.items():
            check(item, expected, what)
    except Tampered as exc:
        return Verdict(job.step, {}, f"step {job.step} read data that was not as committed: {exc}")
    sizes: dict[str, int] = {}
    for data, path in job.outputs.items():
        scan = scan_output(path)
        if scan.problem:
            return Verdict(job.step, sizes, refusal_message(job.step, data, scan.problem))
        sizes[data] = scan.allocated
    return Verdict(job.step, sizes, None, {data: seal(path) for data, path in job.outputs.items()})


class Vetting:
    """One worker thread; `wake()` is called after each verdict (the conductor's sleep ends)."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Condition()
        self._pending: set[str] = set()
        self._verdicts: dict[str, Verdict] = {}
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.add(job.step)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="imagekit-vetting", daemon=True)
            self._thread.start()
        self._jobs.put(job)

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
            try:
                verdict = vet(job)
            except Exception as exc:  # the output changed under the walk, or a tree too deep: never trusted
                verdict = Verdict(job.step, {}, f"step {job.step}'s outputs could not be checked: {exc}")
            with self._lock:
                self._verdicts[job.step] = verdict
                self._lock.notify_all()
            self._wake()
