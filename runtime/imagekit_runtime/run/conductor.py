"""The conductor: drives supervisord so that a pipeline runs as a dataflow.

It starts a step when all its inputs are committed (at most `parallelism` of each kind at once;
a warm step's process earlier, waiting at its gate), commits its outputs on exit 0 or when the step
declares them complete (step_ends.py; a directory's per-file check is vetted later), retries with
backoff or stops the pipeline on failure, frees data nobody needs any more, and hands committed
outputs to the copier (results, checkpoints). Every state change goes through `_transition`,
which checks it against states.TRANSITIONS and journals it.

What it drives is made for it and handed over in `Collaborators` (main.open_conductor); what a
step runs as is step_program.py, why it failed diagnosis.py, the report summary.py, which step
gets a process next dispatch.py. It sleeps until something happens (a step's pidfd, a signal, a
step log written, a retry or a copy due), and each event costs calls about one process only.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ..contract import Event, RunStatus
from ..data.commits import Commits
from ..data.shm_budget import ShmBudget
from ..data.vetting import Vetting
from ..errors import EXIT_ENVIRONMENT, EXIT_FAILURE, EXIT_OK, EXIT_TERMINATED
from ..keys import pipeline_key, step_keys
from ..observe.log_watch import StepEcho
from ..spec import PipelineSpec
from ..states import StepState, check_transition
from ..supervise.config import render
from ..supervise.gates import Gates, bin_dir, gates_dir, install_wait_program
from ..supervise.processes import StepProcesses
from ..supervise.step_program import RunContext, done_fifo, step_program
from . import diagnosis, shard_state
from .dispatch import HAS_PROCESS, Dispatch
from .options import Collaborators, RunOptions
from .outputs import OutputKeeper
from .signals import install_signal_handlers, restore_signal_handlers
from .slots import resolve_slots
from .step_ends import StepEnds
from .summary import RunSummary, StepRun
from .transfers import source_identities

log = logging.getLogger("imagekit.runtime")

UNFINISHED = (StepState.RUNNING, StepState.WARM, StepState.READY, StepState.BACKOFF, StepState.WAITING)


class Conductor(StepEnds):
    def __init__(self, spec: PipelineSpec, options: RunOptions, parts: Collaborators) -> None:
        self.spec = spec
        self.options = options
        self.layout = options.layout
        self.store = parts.store
        self.checkpoints = parts.checkpoints
        self.copier = parts.copier
        self.journal = parts.journal
        self.supervisor = parts.supervisor
        self.environments = parts.environments
        self.step_logs = parts.step_logs
        self.warnings = parts.warnings
        self.run_id = parts.journal.run_id
        self.params = {**dict(spec.params), **options.params}
        self.keys = step_keys(spec, options.shard_index, options.shard_count, self.params, source_identities(spec, options, self.run_id))
        self.producers = spec.producer_of()
        self.slots = resolve_slots(spec, options.parallelism)
        self.context = RunContext(layout=self.layout, params=self.params, shard_index=options.shard_index,
                                  shard_count=options.shard_count, producers=self.producers,
                                  runtime_path=self.layout.helper_path, grace_seconds=spec.grace_seconds)
        self.steps: dict[str, StepRun] = {step.name: StepRun(step.name) for step in spec.steps}
        self.to_run: list[str] = []  # the plan's, once recovery has made it
        self.open_steps: set[str] = set()  # to run, and neither done nor final
        self.backoff: set[str] = set()
        self.touched: set[str] = set()  # steps done or final since the last look at what can be freed
        self.processes = StepProcesses(parts.supervisor, parts.watcher, Gates(gates_dir(self.layout.run_dir)),
                                       self.layout.supervisor_log)
        self.echo: StepEcho | None = None
        self.dispatch: Dispatch | None = None
        self.outputs = OutputKeeper(spec, self.layout, self.keys, self.store, self.copier, self.checkpoints,
                                    self.journal)
        self.commits = Commits(self.store, ShmBudget(spec.shm_bytes, options.shm_soft, self.layout.shm_dir,
                                                     self.warnings), Vetting(wake=parts.watcher.wake))
        self.stop_reason: str | None = None
        self.terminated = False

    # ----------------------------------------------------------------- run
    def run(self) -> RunSummary:
        started = time.monotonic()
        self.journal.record(Event.RUN_START, pipeline=self.spec.name, shard=self.options.shard_index,
                            shard_count=self.options.shard_count, key=pipeline_key(self.keys))
        previous_handlers = install_signal_handlers(self._on_signal)
        try:
            if self._already_complete():
                return self._summary(EXIT_OK, RunStatus.ALREADY_COMPLETE, started)
            if self.options.force:
                shard_state.forget_everything(self.spec, self.layout, self.store)
            self._recover()
            self._start_supervisor()
            exit_code, status = self._loop()
            self._drain_copies()
            exit_code, status = self._check_seals(exit_code, status)
            if exit_code == EXIT_OK and not self._complete():
                exit_code, status = EXIT_ENVIRONMENT, RunStatus.FAILED  # computed, but not every result delivered
            if exit_code == EXIT_OK and self.options.release_when_complete:
                self.outputs.release_checkpointed()
            return self._summary(exit_code, status, started)
        finally:
            self.supervisor.shutdown()
            self.processes.gates.close_all()
            self.commits.vetting.close()
            if self.echo is not None:
                self.echo.pump_all(final=True)
                self.echo.close()
            for step in self.steps.values():
                if step.state in UNFINISHED:
                    self.store.discard_staging(step.name)
            restore_signal_handlers(previous_handlers)

    def _check_seals(self, exit_code: int, status: RunStatus) -> tuple[int, RunStatus]:
        """Committed data changed after its commit (a copy refused it, or it is not as sealed now) fails a run
        that would have succeeded, with the first such change as its one line (data/seal.py)."""
        changed = self.copier.tampered + self.outputs.changed_since_commit()
        foreign = self.journal.check()
        if foreign is not None:
            changed.append(foreign)
        for line in changed:
            log.error("error: %s", line)
        if not changed:
            return exit_code, status
        if exit_code == EXIT_OK:
            self.stop_reason = changed[0]
            return EXIT_FAILURE, RunStatus.FAILED
        self.warnings.extend(changed)
        return exit_code, status

    def _on_signal(self) -> None:
        self.terminated = True  # the watcher's wake-up fd ends its sleep

    def _already_complete(self) -> bool:
        if self.options.force or not shard_state.already_complete(self.layout, self.keys):
            return False
        log.info("shard %d of %s is already complete (%s); nothing to do — use --force to run again",
                 self.options.shard_index, self.spec.name, self.layout.completion_marker)
        for step in self.steps.values():
            step.state = StepState.REUSED  # outputs delivered; nothing to journal
        return True

    def _summary(self, exit_code: int, status: RunStatus, started: float) -> RunSummary:
        self.journal.record(Event.RUN_END, status=status.value, exit_code=exit_code,
                            peak_shm_bytes=self.commits.peak_bytes)
        return RunSummary(
            pipeline=self.spec.name, run_id=self.run_id, shard_index=self.options.shard_index,
            shard_count=self.options.shard_count, exit_code=exit_code, status=status,
            wall_seconds=time.monotonic() - started, peak_shm_bytes=self.commits.peak_bytes,
            steps=[self.steps[name] for name in self.spec.topological_order()],
            results_dir=str(self.layout.results_dir), message=self.stop_reason or "",
            warnings=self.warnings + self.copier.errors,
        )

    # ------------------------------------------------------------ recovery
    def _recover(self) -> None:
        """Plan from what survived: shm first, then SSD, then PV; restore into shm what must come back."""
        plan = shard_state.plan_recovery(self.spec, self.layout, self.keys, self.store, self.checkpoints,
                                         force=self.options.force)
        self.to_run = list(plan.to_run)
        self.open_steps = set(plan.to_run)
        self.journal.record(Event.PLAN, **shard_state.plan_fields(plan))
        shard_state.note_inputs(plan, self.steps)
        shard_state.bring_back(plan, self.keys, self.store, self.checkpoints, self.run_id)
        for name in plan.reused:
            self._transition(name, StepState.REUSED)
        self.commits.count(shard_state.committed_bytes(self.layout, self.store, plan.reused))
        # Results of reused steps may not have been delivered (crash between commit and copy).
        for name in plan.reused:
            self.outputs.deliver_and_checkpoint(name)
        if plan.to_run:
            log.info("%s shard %d: running %s; reusing %s", self.spec.name, self.options.shard_index,
                     ", ".join(plan.to_run), ", ".join(plan.reused) or "nothing")

    def _start_supervisor(self) -> None:
        programs = [step_program(step, self.context, self.environments.paths_for(step))
                    for step in map(self.spec.step, self.to_run)]
        install_wait_program(bin_dir(self.layout.run_dir))
        self.processes.listen_for_done(done_fifo(self.layout.run_dir))
        self.layout.supervisor_conf.write_text(render(self.supervisor.socket_path, self.layout.run_dir, programs))
        self.supervisor.start()

    # ---------------------------------------------------------------- loop
    def _loop(self) -> tuple[int, RunStatus]:
        self.echo = StepEcho.following(self.layout.logs_dir, self.to_run, self.step_logs, self.options.log_interval)
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
            if not (self.open_steps or self.processes.declared or self.commits.busy()):
                for name in [n for n, s in self.steps.items() if s.state.done]:
                    self._transition(name, StepState.RETIRED)
                return EXIT_OK, RunStatus.COMPLETED
            self._sleep()

    def _sleep(self) -> None:
        """Until a process ends, a signal, a log written, or the next thing due (no timer otherwise)."""
        assert self.echo is not None
        polled = None if self.processes.watcher.supported else self.options.poll_interval
        timeouts = [t for t in (self.echo.timeout(), polled) if t is not None]
        if self.backoff:
            timeouts.append(max(0.0, min(self.steps[n].retry_at for n in self.backoff) - time.monotonic()))
        if self.copier.busy():
            timeouts.append(self.options.copy_poll_interval)
        self.echo.after_wait(self.processes.watcher.wait(min(timeouts) if timeouts else None, self.echo.wake_fd()))

    def _retry_due(self) -> None:
        now = time.monotonic()
        for name in [n for n in self.backoff if now >= self.steps[n].retry_at and n not in self.processes.pids]:
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
        self.processes.spawn(step.name, gated=self.spec.step(step.name).warm, open_gate=state is StepState.RUNNING)
        self.queue.started(step.name)

    def _release(self, step: StepRun) -> None:
        """The inputs of a waiting warm step are committed and it has a slot: open its gate."""
        self.processes.open_gate(step.name)
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
        self.processes.ended(step.name)

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

    # ---------------------------------------------------- stop and signals
    def _stop_all(self) -> None:
        """Stop every step with a process, start nothing new. A warm step still waiting at its gate sees it
        closed and is stopped too: it did not run."""
        self.processes.stop([n for n, s in self.steps.items() if s.state in HAS_PROCESS], self.spec.grace_seconds,
                            meanwhile=self._pump_logs)
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

    def _drain_copies(self) -> None:
        while self.copier.busy() and not self.terminated:
            self.options.on_tick()
            time.sleep(0.01)
        if self.dispatch is not None:
            self.touched.update(self.steps)
            self._free_unneeded()

    def _complete(self) -> bool:
        """Mark the shard complete; False (nothing marked) when a result was not delivered."""
        missing = shard_state.mark_complete(self.spec, self.layout, self.keys, self.checkpoints, run_id=self.run_id,
                                            shard_index=self.options.shard_index,
                                            shard_count=self.options.shard_count)
        if missing:
            log.error("error: results not delivered to %s: %s (fix: free space there, or pass --results DIR)",
                      self.layout.results_dir, ", ".join(missing))
            self.warnings.append(f"results not delivered: {', '.join(missing)}")
        return not missing

    # ------------------------------------------------------------- helpers
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

    def _pump_logs(self) -> None:
        if self.echo is not None:
            self.echo.pump_all()
