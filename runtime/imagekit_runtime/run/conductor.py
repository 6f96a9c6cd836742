"""The conductor: the scheduling state machine that runs a pipeline's steps as a dataflow.

It starts a step when all its inputs are committed (at most `parallelism` of each kind at once; a warm
step's process earlier, waiting at its gate), commits its outputs when its work is over (exit 0, or the
step declares them complete: step.done()), retries with backoff or stops the pipeline on failure, frees
data nobody needs any more, and hands committed outputs on (outputs.py). A step's end becomes its
consumers' start: its producers' verdicts first (data/vetting.py: nothing is built on data refused
later), then the commit (no per-file metadata), then at once the gates of the consumers whose inputs are
all committed; delivery and checkpoints follow. Every state change goes through `_transition`, which
checks it against states.TRANSITIONS and journals it.

It decides; what it drives does (drives.py, handed over in `Collaborators`), so tests drive it with
fakes and no process. It sleeps until something happens, and each event costs calls about one process.
A run's life around it (the plan first, the seals and the completion marker last) is shard_run.py.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from imagekit_core.contract import Event, RunStatus
from imagekit_core.errors import EXIT_FAILURE, EXIT_OK, EXIT_TERMINATED
from imagekit_core.spec import PipelineSpec

from ..data.commits import Commits, TamperedInput
from ..data.sandbox import OutputRefused
from ..data.shm_budget import ShmBudget
from ..data.vetting import Verdict, Vetting
from ..keys import step_keys
from ..states import StepState, check_transition
from ..supervise.client import ProcessInfo
from . import diagnosis, shard_state
from .dispatch import HAS_PROCESS, Dispatch
from .drives import Echo
from .options import Collaborators, RunOptions
from .outputs import OutputKeeper
from .planner import Plan
from .slots import resolve_slots
from .summary import StepRun
from .transfers import source_identities

log = logging.getLogger("imagekit.runtime")

UNFINISHED = (StepState.RUNNING, StepState.WARM, StepState.READY, StepState.BACKOFF, StepState.WAITING)


class Conductor:
    def __init__(self, spec: PipelineSpec, options: RunOptions, parts: Collaborators) -> None:
        self.spec = spec
        self.options = options
        self.layout = options.layout
        self.store = parts.store
        self.checkpoints = parts.checkpoints
        self.copier = parts.copier
        self.journal = parts.journal
        self.host = parts.host
        self.make_echo = parts.echo
        self.environments = parts.environments
        self.warnings = parts.warnings
        self.run_id = parts.journal.run_id
        self.params = options.params
        self.keys = step_keys(spec, options.shard_index, options.shard_count, self.params, source_identities(spec, options, self.run_id))
        self.producers = spec.producer_of()
        self.slots = resolve_slots(spec, options.flags.parallelism)
        self.steps: dict[str, StepRun] = {step.name: StepRun(step.name) for step in spec.steps}
        self.to_run: list[str] = []  # the plan's, once recovery has made it
        self.open_steps: set[str] = set()  # to run, and neither done nor final
        self.backoff: set[str] = set()
        self.touched: set[str] = set()  # steps done or final since the last look at what can be freed
        self.echo: Echo | None = None
        self.dispatch: Dispatch | None = None
        self.outputs = OutputKeeper(spec, self.layout, self.keys, self.store, self.copier, self.checkpoints,
                                    self.journal)
        self.commits = Commits(self.store, ShmBudget(spec.shm_bytes, options.flags.shm_soft, self.layout.shm_dir,
                                                     self.warnings), Vetting(wake=parts.host.wake))
        self.stop_reason: str | None = None
        self.terminated = False

    # ----------------------------------------------------------- lifecycle
    def adopt(self, plan: Plan) -> None:
        """The plan made from what survived (shard_run.py): its steps to run, and what it reuses."""
        self.to_run = list(plan.to_run)
        self.open_steps = set(plan.to_run)
        for name in plan.reused:
            self._transition(name, StepState.REUSED)
        self.commits.count(shard_state.committed_bytes(self.layout, self.store, plan.reused))
        # Results of reused steps may not have been delivered (crash between commit and copy).
        for name in plan.reused:
            self.outputs.deliver_and_checkpoint(name)

    def stop_requested(self) -> None:
        """SIGTERM or SIGINT: stop the run (the host's wake-up ends the sleep)."""
        self.terminated = True

    def close(self) -> None:
        """After the run, whatever happened: no process left, output echoed, staging of unfinished steps gone."""
        self.host.shutdown()
        self.commits.vetting.close()
        if self.echo is not None:
            self.echo.pump_all(final=True)
            self.echo.close()
        for step in self.steps.values():
            if step.state in UNFINISHED:
                self.store.discard_staging(step.name)

    # ---------------------------------------------------------------- loop
    def loop(self) -> tuple[int, RunStatus]:
        """Run the plan's steps until every one is done (EXIT_OK), one failed, or a stop was asked."""
        self.echo = self.make_echo(self.to_run)
        self.dispatch = Dispatch(self.spec, self.to_run, self.slots, lambda name: self.steps[name].state)
        for name in self.to_run:
            if self.queue.inputs_committed(name):
                self._transition(name, StepState.READY)
                self.queue.runnable(name)
            else:
                self.queue.maybe_in_line(name)
        self.touched.update(self.steps)
        while True:
            if self.terminated and self.stop_reason is None:
                self.stop_reason = "stopped by SIGTERM"
            if self.stop_reason is not None:
                self._stop_all()
                failed = any(s.state is StepState.FAILED for s in self.steps.values())
                if self.terminated and not failed:
                    return EXIT_TERMINATED, RunStatus.TERMINATED
                return EXIT_FAILURE, RunStatus.FAILED
            self._collect_exits()
            if self.stop_reason is not None:
                continue
            self.options.on_tick()
            self._retry_due()
            self._dispatch()
            self.commits.start_vetting()  # after the dispatch: the walk is not in the consumers' way
            self._free_unneeded()
            if not (self.open_steps or self.host.declared or self.commits.busy()):
                for name in [n for n, s in self.steps.items() if s.state.done]:
                    self._transition(name, StepState.RETIRED)
                return EXIT_OK, RunStatus.COMPLETED
            self._sleep()

    def _sleep(self) -> None:
        """Until a process ends, a signal, a log written, or the next thing due (no timer otherwise)."""
        assert self.echo is not None
        polled = self.options.poll_interval if self.host.polls else None
        timeouts = [t for t in (self.echo.timeout(), polled) if t is not None]
        if self.backoff:
            timeouts.append(max(0.0, min(self.steps[n].retry_at for n in self.backoff) - time.monotonic()))
        if self.copier.busy():
            timeouts.append(self.options.copy_poll_interval)
        self.echo.after_wait(self.host.wait(min(timeouts) if timeouts else None, self.echo.wake_fd()))

    def _retry_due(self) -> None:
        now = time.monotonic()
        for name in [n for n in self.backoff if now >= self.steps[n].retry_at and n not in self.host.running]:
            self.backoff.discard(name)
            if self.queue.inputs_committed(name):
                self._transition(name, StepState.READY)
                self.queue.runnable(name)
            else:  # a warm step that ended before its inputs were there
                self._transition(name, StepState.WAITING)
                self.queue.maybe_in_line(name)

    def _dispatch(self) -> None:
        """Open the gates of warm steps and start ready ones while slots are free; then warm the next in line."""
        for name in self.queue.next_runnable():
            if self.steps[name].state is StepState.WARM:
                self._release(self.steps[name])
            else:
                self._spawn(self.steps[name], StepState.RUNNING)
        while warm := self.queue.next_warm():  # a warm start may bring its own consumers in line
            for name in warm:
                self._spawn(self.steps[name], StepState.WARM)

    def _spawn(self, step: StepRun, state: StepState) -> None:
        """A process for the step: RUNNING (inputs committed, a slot taken) or WARM (waits at its gate)."""
        self.store.prepare_staging(step.name)
        step.attempts += 1
        step.started_at = time.monotonic()
        if state is StepState.RUNNING:
            self._measure_inputs(step)
        else:
            self.queue.warm.add(step.name)
        self._transition(step.name, state, attempt=step.attempts)
        self.host.spawn(step.name, gated=self.spec.step(step.name).warm, open_gate=state is StepState.RUNNING)
        self.queue.started(step.name)

    def _release(self, step: StepRun) -> None:
        """The inputs of a waiting warm step are committed and it has a slot: open its gate."""
        self.host.open_gate(step.name)
        self.queue.warm.discard(step.name)
        step.started_at = time.monotonic()
        self._transition(step.name, StepState.RUNNING, attempt=step.attempts)  # its inputs measured at its end

    def _measure_inputs(self, step: StepRun) -> None:
        step.bytes_in = sum(self.store.size_of(self.producers[d], d) for d in self.spec.step(step.name).inputs)

    def _ended(self, step: StepRun, held_slot: bool) -> None:
        """The step's process is over: its slot, gate and leftover processes go."""
        if held_slot:
            self.queue.freed_slot(step.name)
        self.queue.warm.discard(step.name)
        self.host.ended(step.name)

    def _fail_attempt(self, step: StepRun, reason: str) -> None:
        assert self.echo is not None
        self.echo.pump(step.name)
        # Before discarding: the staging bytes show a full shm.
        enospc = diagnosis.enospc_message(self.echo.last_lines(step.name, 40), self.layout.shm_dir,
                                          self.commits.live_bytes)
        self.store.discard_staging(step.name)  # a failed attempt never commits anything
        if enospc:
            reason = f"{reason}: {enospc}"
        retries = self.spec.step(step.name).retries
        if step.attempts <= retries and not self.terminated:
            delay = min(self.options.retry_backoff * (2 ** (step.attempts - 1)), 10.0)
            step.retry_at = time.monotonic() + delay
            log.warning("step %s %s; retrying in %.1fs (attempt %d of %d)", step.name, reason, delay,
                        step.attempts + 1, retries + 1)
            self._transition(step.name, StepState.BACKOFF, reason=reason, exit_code=step.exit_code)
            self.backoff.add(step.name)
            return
        self._fail(step, reason)

    def _fail(self, step: StepRun, reason: str) -> None:
        """The step failed for good: the run stops."""
        assert self.echo is not None
        step.message = reason
        self._transition(step.name, StepState.FAILED, reason=reason, exit_code=step.exit_code)
        self.stop_reason = diagnosis.failure_message(step.name, step.attempts, reason)
        log.error("error: %s", self.stop_reason)
        tail = diagnosis.log_tail(step.name, self.layout.step_log(step.name),
                                  self.echo.last_lines(step.name, 20))
        if tail:
            log.error("%s", tail)

    # ------------------------------------------------------------ step ends
    def _collect_exits(self) -> None:
        """Steps that declared their outputs complete, verdicts of vetting, then the processes that ended."""
        for name in self.host.declarations():
            self._on_done(self.steps[name])
        self._settle(())
        for name, info in self.host.exits():
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
        if step.name in self.host.declared:  # committed (or refused) when it declared its outputs complete
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
        # Consumers first; its log is echoed a moment later (observe/logs.py), not now: the consumers need the CPU.
        self._inputs_arrive(step.name)
        if record.vetted:
            self.outputs.deliver_and_checkpoint(step.name, record)

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
        self.outputs.deliver_and_checkpoint(step.name, record)

    def _inputs_arrive(self, producer: str) -> None:
        """The producer committed: consumers whose inputs are now all there become runnable (gates open first)."""
        for consumer in self.queue.committed(producer):
            state = self.steps[consumer].state
            if state is StepState.WAITING:
                self._transition(consumer, StepState.READY)
            if state in (StepState.WAITING, StepState.WARM):
                self.queue.runnable(consumer)
        self._dispatch()  # the gate of a waiting consumer opens before anything else is done

    def _stop_all(self) -> None:
        """Stop every step with a process, start nothing new. A warm step still waiting at its gate sees it
        closed and is stopped too: it did not run."""
        assert self.echo is not None  # made when the loop began
        self.host.stop([n for n, s in self.steps.items() if s.state in HAS_PROCESS], self.spec.grace_seconds,
                       meanwhile=self.echo.pump_all)
        for step in self.steps.values():
            if step.state in UNFINISHED:
                if step.state is StepState.RUNNING:
                    step.wall_seconds += time.monotonic() - (step.started_at or time.monotonic())
                if step.state in HAS_PROCESS:
                    self._ended(step, held_slot=step.state is StepState.RUNNING)
                self.store.discard_staging(step.name)
                self._transition(step.name, StepState.STOPPED, reason=self.stop_reason)

    # ------------------------------------------- results, checkpoints, free
    def _free_unneeded(self) -> None:
        """Free what the steps that ended since the last look (and their producers) no longer need."""
        candidates: set[str] = set()
        for name in self.touched:
            candidates.update(p for p in (name, *self.queue.producers[name])
                              if self.steps[p].state.done and not self.commits.pending(p))
        self.touched.clear()
        done = sorted(candidates)
        self.commits.release(self.outputs.free_unneeded(
            # A consumer's verdict checks the seals of its directory inputs (data/vetting.py): not freed under it.
            done, settled=lambda consumer: (self.steps[consumer].state.done and not self.commits.pending(consumer))
            or consumer not in self.to_run))
        for name in done:
            if self.outputs.readers_over(name, lambda c: self.steps[c].state.done or self.steps[c].state.final):
                self._transition(name, StepState.RETIRED)
            if any(self.copier.pending(name, data) for data in self.spec.step(name).outputs):
                self.touched.add(name)  # look again once its copies are done

    def drain_copies(self) -> None:
        """Wait for the copies out of shm (results, checkpoints), then free what they held."""
        while self.copier.busy() and not self.terminated:
            self.options.on_tick()
            time.sleep(0.01)
        if self.dispatch is not None:
            self.touched.update(self.steps)
            self._free_unneeded()

    @property
    def queue(self) -> Dispatch:
        """Which step gets a process next; made once recovery has decided what runs."""
        assert self.dispatch is not None
        return self.dispatch

    def _transition(self, name: str, new: StepState, **fields: Any) -> None:
        step = self.steps[name]
        if step.state is new:
            return
        check_transition(name, step.state, new)
        old, step.state = step.state, new
        if new.done or new.final:
            self.open_steps.discard(name)
            self.touched.add(name)
        if self.options.on_transition is not None:
            self.options.on_transition(name, old, new)
        self.journal.record(Event.TRANSITION, step=name, **{"from": old.value, "to": new.value}, **fields)
