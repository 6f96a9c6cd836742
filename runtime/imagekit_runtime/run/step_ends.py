"""How a step's end becomes its consumers' start: the conductor's half that commits (the Conductor mixes it in).

A step's work is over when it declares its outputs complete (step.done(), read from the done FIFO) or
when its process exits 0. Its producers' verdicts come first (data/vetting.py: nothing is committed on
data refused later); then the commit, which touches no per-file metadata, and at once the gates of
the consumers whose inputs are now all committed. Delivery and checkpoints follow, for a directory
output only once its verdict passed. The process's exit after a declaration only ends it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from ..contract import Event
from ..data.commits import Commits, TamperedInput
from ..data.sandbox import OutputRefused
from ..data.vetting import Verdict
from ..layout import RunLayout
from ..observe.journal import Journal
from ..spec import PipelineSpec
from ..states import StepState
from ..supervise.client import ProcessInfo
from ..supervise.processes import StepProcesses
from . import diagnosis
from .dispatch import Dispatch
from .outputs import OutputKeeper
from .summary import StepRun

log = logging.getLogger("imagekit.runtime")


class StepEnds:
    """What the conductor provides (conductor.py); the methods below are its handling of a step's end."""

    spec: PipelineSpec
    layout: RunLayout
    keys: dict[str, str]
    producers: dict[str, str]  # data -> the step that makes it
    run_id: str
    journal: Journal
    warnings: list[str]
    steps: dict[str, StepRun]
    processes: StepProcesses
    commits: Commits
    outputs: OutputKeeper
    stop_reason: str | None
    touched: set[str]  # steps to look at for freeing

    @property
    def queue(self) -> Dispatch:
        raise NotImplementedError

    def _transition(self, name: str, new: StepState, **fields: Any) -> None:
        raise NotImplementedError

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _measure_inputs(self, step: StepRun) -> None:
        raise NotImplementedError

    def _ended(self, step: StepRun, held_slot: bool) -> None:
        raise NotImplementedError

    def _fail_attempt(self, step: StepRun, reason: str) -> None:
        raise NotImplementedError

    def _fail(self, step: StepRun, reason: str) -> None:
        raise NotImplementedError

    def _collect_exits(self) -> None:
        """Steps that declared their outputs complete, verdicts of vetting, then the processes that ended."""
        for name in self.processes.declarations():
            self._on_done(self.steps[name])
        self._settle(())
        for name, info in self.processes.exits():
            self._on_exit(self.steps[name], info)

    def _over(self, step: StepRun) -> bool:
        """The step's work is over (declared, or its process ended): its producers' verdicts first, so that
        nothing is built on refused data; False when one refused (the run stops, the step counts as not run).
        Another step's failure does not undo this one's work: it is committed, and a resume reuses it."""
        step.finished_at = time.monotonic()
        step.wall_seconds += step.finished_at - (step.started_at or step.finished_at)
        producers = self.queue.producers[step.name]
        self._settle(producers)
        return all(self.steps[producer].state is not StepState.FAILED for producer in producers)

    def _on_done(self, step: StepRun) -> None:
        """The step declared its outputs complete (step.done()): its work is over, so its slot is free and its
        outputs are committed now; the kernel's teardown of its process ends later (_on_exit)."""
        if step.state is StepState.RUNNING and self._over(step):
            self.queue.freed_slot(step.name)
            self._commit(step)
            self._measure_inputs(step)  # after the handoff: their sizes are final now (vetted)

    def _on_exit(self, step: StepRun, info: ProcessInfo) -> None:
        step.exit_code = diagnosis.exit_code_of(info)
        if step.name in self.processes.declared:  # committed (or refused) when it declared its outputs complete
            self._ended(step, held_slot=False)
            if not diagnosis.succeeded(info) and step.state.done:
                warning = (f"step {step.name} {diagnosis.exit_reason(info, self.layout.supervisor_log)} after "
                           "declaring its outputs complete (step.done()): its commit is kept")
                log.warning("warning: %s", warning)
                self.warnings.append(warning)
            return
        was = step.state
        if not self._over(step):
            return  # _stop_all ends it
        self._ended(step, held_slot=was is StepState.RUNNING)
        if not diagnosis.succeeded(info):
            self._fail_attempt(step, diagnosis.exit_reason(info, self.layout.supervisor_log))
        elif was is StepState.WARM:
            self._fail_attempt(step, "exited before its inputs were committed (a warm step must wait for them: "
                                     "step.input_path or imagekit-wait)")
        else:
            self._commit(step)
        self._measure_inputs(step)

    def _commit(self, step: StepRun) -> None:
        self._transition(step.name, StepState.COMMITTING, exit_code=0)
        try:
            record = self.commits.commit(step.name, self.keys[step.name], self.spec.step(step.name).outputs,
                                         self.run_id, {data: self.producers[data]
                                                       for data in self.spec.step(step.name).inputs})
        except TamperedInput as exc:
            self._fail(step, str(exc))  # no retry: it would read the same data
            return
        except OutputRefused as exc:
            self._fail_attempt(step, str(exc))
            return
        step.bytes_out = sum(record.outputs.values())
        self._transition(step.name, StepState.COMMITTED, bytes_out=step.bytes_out,
                         **({"outputs": record.outputs} if record.vetted else {}))
        # Consumers first; its log is echoed a moment later (log_watch.py), not now: the consumers need the CPU.
        self._inputs_arrive(step.name)
        if record.vetted:
            self.outputs.deliver_and_checkpoint(step.name)

    def _settle(self, producers: Iterable[str]) -> None:
        """Apply the verdicts of vetting that are in, after waiting for those of `producers`."""
        self.commits.start_vetting()
        self.commits.vetting.wait(producers)
        for verdict in self.commits.vetting.verdicts():
            self._on_verdict(verdict)

    def _on_verdict(self, verdict: Verdict) -> None:
        step = self.steps[verdict.step]
        self.touched.add(step.name)  # it may be freed or retired now
        try:
            record = self.commits.settle(verdict)
        except OutputRefused as exc:
            self._fail(step, str(exc))  # its consumers, started or not, are stopped: they did not run
            return
        step.bytes_out = sum(record.outputs.values())
        self.journal.record(Event.VETTED, step=step.name, bytes_out=step.bytes_out, outputs=record.outputs)
        self.outputs.deliver_and_checkpoint(step.name)

    def _inputs_arrive(self, producer: str) -> None:
        """The producer committed: consumers whose inputs are now all there become runnable (gates open first)."""
        for consumer in self.queue.committed(producer):
            state = self.steps[consumer].state
            if state is StepState.WAITING:
                self._transition(consumer, StepState.READY)
            if state in (StepState.WAITING, StepState.WARM):
                self.queue.runnable(consumer)
        self._dispatch()  # the gate of a waiting consumer opens before anything else is done
