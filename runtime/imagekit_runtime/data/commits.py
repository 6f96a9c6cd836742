"""A step's outputs committed at its end, vetted off the critical path, and counted in shm.

The commit itself touches no per-file metadata (datastore.commit, sandbox.quick_check): a file output is
settled by one lstat, a directory output is handed to the vetting thread, whose verdict either gives the
commit record its sizes (counted against the pipeline's `shm` then) or refuses the step after all. The
bytes counted are the blocks the committed data takes (commit records), which the run's peak reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .datastore import CommitRecord, DataStore
from .sandbox import OutputRefused, UnsafeOutput
from .seal import Tampered, check
from .shm_budget import ShmBudget
from .vetting import Job, Verdict, Vetting


class TamperedInput(OutputRefused):
    """A step's input changed after its commit: the step's outputs are not committed."""


@dataclass
class Commits:
    store: DataStore
    budget: ShmBudget
    vetting: Vetting
    live_bytes: int = 0  # blocks the committed data takes in shm (commit records)
    peak_bytes: int = 0
    _counted: dict[str, int] = field(default_factory=dict)  # unvetted steps: the bytes counted at commit
    _queued: dict[str, Job] = field(default_factory=dict)  # committed, their vetting not started yet

    def commit(self, step: str, key: str, outputs: tuple[str, ...], run: str,
               inputs: dict[str, str] | None = None) -> CommitRecord:
        """Commit the step's staged outputs (OutputRefused: nothing committed), once its `inputs` (data ->
        producer) are found as they were sealed: a file input now, a directory input by the vetting, with
        the step's directory outputs. Such steps are queued: start_vetting() once their consumers are on
        their way."""
        to_check = self.check_inputs(step, inputs or {})
        # With inputs to check the record says unvetted: not reused by a later run either, should this one stop
        # before the verdict.
        record = self.store.commit(step, key, outputs, run,
                                   admit=lambda adding: self.budget.admit(step, self.live_bytes, adding),
                                   vet_later=bool(to_check))
        counted = sum(record.outputs.values())
        self.count(counted)
        if not record.vetted:
            self._counted[step] = counted
            self._queued[step] = Job(step, {data: self.store.layout.input_path(step, data) for data in outputs},
                                     to_check)
        return record

    def check_inputs(self, step: str, inputs: dict[str, str]) -> dict[str, tuple[Path, str]]:
        """Check the step's file inputs against their seals (one lstat each); return its directory inputs, for
        the vetting thread to check (a walk). TamperedInput when one is not as it was committed."""
        deferred: dict[str, tuple[Path, str]] = {}
        for what, (item, expected) in self.store.sealed_inputs(inputs).items():
            if item.is_dir() and not item.is_symlink():
                deferred[what] = (item, expected)
                continue
            try:
                check(item, expected, what)
            except Tampered as exc:
                raise TamperedInput(f"step {step} read data that was not as committed: {exc}") from None
        return deferred

    def start_vetting(self) -> None:
        """Hand the queued commits to the vetting thread (after the gates are open and the consumers spawned: the
        walk holds the interpreter's lock between its system calls)."""
        for job in self._queued.values():
            self.vetting.submit(job)
        self._queued.clear()

    def count(self, adding: int) -> None:
        self.live_bytes += adding
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)

    def release(self, released: int) -> None:
        self.live_bytes -= released

    def pending(self, step: str) -> bool:
        """Committed, and its verdict not applied yet."""
        return step in self._queued or self.vetting.pending(step)

    def busy(self) -> bool:
        return bool(self._queued) or self.vetting.busy()

    def settle(self, verdict: Verdict) -> CommitRecord:
        """Apply a verdict: the record gets its sizes (and the pipeline's `shm` is checked against them), or the
        step's commit is undone and OutputRefused raised with the one line it fails with."""
        counted = self._counted.pop(verdict.step, 0)
        try:
            if verdict.refusal is not None:
                raise UnsafeOutput(verdict.refusal)
            adding = sum(verdict.sizes.values()) - counted
            self.budget.admit(verdict.step, self.live_bytes, adding)
        except OutputRefused:
            self.store.drop_step(verdict.step)
            self.release(counted)
            raise
        self.count(adding)
        return self.store.mark_vetted(verdict.step, verdict.sizes, verdict.seals)
