"""The conductor: drives supervisord so that a pipeline runs as a dataflow.

It starts a step when all its inputs are committed (at most `parallelism` at
once), commits its outputs on exit 0, retries with backoff or stops the
pipeline on failure, frees data nobody needs any more, and hands committed
outputs to the copier (results, checkpoints). Every state change goes through
`_transition`, which checks it against states.TRANSITIONS and journals it.

What it drives is made for it and handed over in `Collaborators` (main.open_conductor);
what a step runs as is step_program.py, why it failed diagnosis.py, the report summary.py.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import diagnosis, shard_state, signals
from .checkpoint import CheckpointStore
from .contract import Event, RunStatus
from .copier import Copier
from .datastore import DataStore
from .environments import EnvironmentProvider
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_TERMINATED
from .exit_watch import ExitWatcher
from .journal import Journal
from .keys import pipeline_key, step_keys
from .layout import RunLayout
from .leftovers import kill_leftovers
from .logs import LogFollower
from .outputs import OutputKeeper
from .sandbox import OutputRefused
from .shm_budget import ShmBudget
from .spec import PipelineSpec
from .states import StepState, check_transition
from .step_program import RunContext, step_program
from .summary import RunSummary, StepRun
from .supervisor_client import ProcessInfo, Supervisor
from .supervisor_conf import render

log = logging.getLogger("imagekit.runtime")

ENDED = ("EXITED", "FATAL", "STOPPED", "BACKOFF", "UNKNOWN")  # supervisord states of a process that is over
LIVE = ("RUNNING", "STARTING", "STOPPING")
UNFINISHED = (StepState.RUNNING, StepState.READY, StepState.BACKOFF, StepState.WAITING)


@dataclass
class RunOptions:
    layout: RunLayout
    shard_index: int = 0
    shard_count: int = 1
    params: dict[str, str] = field(default_factory=dict)
    parallelism: int | None = None
    force: bool = False
    poll_interval: float = 0.01  # without pidfds: how often to ask supervisord
    idle_poll_interval: float = 0.1  # with pidfds: safety net, and how often step logs are echoed
    retry_backoff: float = 0.5  # seconds before the first retry; doubles each time, at most 10 s
    runtime_path: Path = Path(__file__).resolve().parent.parent  # put on steps' PYTHONPATH for the helper
    quiet_steps: bool = False  # do not echo step output to stderr
    on_transition: Callable[[str, StepState, StepState], None] | None = None  # progress displays
    inherit_fds: tuple[int, ...] = ()  # passed to supervisord and so to every step: the shard lock
    shm_soft: bool = False  # a commit past the pipeline's `shm` warns instead of failing the step


@dataclass
class Collaborators:
    """What the conductor drives; whoever made them closes them after the run."""

    store: DataStore
    checkpoints: CheckpointStore
    copier: Copier
    journal: Journal            # its run_id is the run's
    supervisor: Supervisor      # made, not started: the conductor starts it with the steps to run
    watcher: ExitWatcher
    environments: EnvironmentProvider
    log_stream: TextIO          # where step output is echoed, prefixed with the step's name
    warnings: list[str]         # the checkpoint store's too


class Conductor:
    def __init__(self, spec: PipelineSpec, options: RunOptions, parts: Collaborators) -> None:
        self.spec = spec
        self.options = options
        self.layout = options.layout
        self.store = parts.store
        self.checkpoints = parts.checkpoints
        self.copier = parts.copier
        self.journal = parts.journal
        self.supervisor = parts.supervisor
        self.watcher = parts.watcher
        self.environments = parts.environments
        self.log_stream = parts.log_stream
        self.warnings = parts.warnings
        self.run_id = parts.journal.run_id
        self.params = {**dict(spec.params), **options.params}
        self.keys = step_keys(spec, options.shard_index, options.shard_count, self.params)
        self.producers = spec.producer_of()
        self.consumers = spec.consumers_of()
        self.parallelism = options.parallelism or spec.parallelism
        self.context = RunContext(layout=self.layout, params=self.params, shard_index=options.shard_index,
                                  shard_count=options.shard_count, producers=self.producers,
                                  runtime_path=options.runtime_path, grace_seconds=spec.grace_seconds)
        self.steps: dict[str, StepRun] = {step.name: StepRun(step.name) for step in spec.steps}
        self.to_run: list[str] = []  # the plan's, once recovery has made it
        self.followers: dict[str, LogFollower] = {}
        self.outputs = OutputKeeper(spec, self.layout, self.keys, self.store, self.copier, self.checkpoints,
                                    self.journal)
        self.live_bytes = 0  # blocks the committed data takes in shm (commit records)
        self.peak_bytes = 0
        self.budget = ShmBudget(spec.shm_bytes, options.shm_soft, self.layout.shm_dir, self.warnings)
        self.stop_reason: str | None = None
        self.terminated = False

    # ----------------------------------------------------------------- run
    def run(self) -> RunSummary:
        started = time.monotonic()
        self.journal.record(Event.RUN_START, pipeline=self.spec.name, shard=self.options.shard_index,
                            shard_count=self.options.shard_count, key=pipeline_key(self.keys))
        previous_handlers = signals.install(self._on_signal)
        try:
            if self._already_complete():
                return self._summary(EXIT_OK, RunStatus.ALREADY_COMPLETE, started)
            if self.options.force:
                shard_state.forget_everything(self.spec, self.layout, self.store)
            self._recover()
            self._start_supervisor()
            exit_code, status = self._loop()
            self._drain_copies()
            if exit_code == EXIT_OK:
                self._complete()
            return self._summary(exit_code, status, started)
        finally:
            self.supervisor.shutdown()
            for follower in self.followers.values():
                follower.pump(final=True)
            for step in self.steps.values():
                if step.state in UNFINISHED:
                    self.store.discard_staging(step.name)
            signals.restore(previous_handlers)

    def _already_complete(self) -> bool:
        if self.options.force or not shard_state.already_complete(self.layout, self.keys):
            return False
        log.info("shard %d of %s is already complete (%s); nothing to do — use --force to run again",
                 self.options.shard_index, self.spec.name, self.layout.completion_marker)
        for step in self.steps.values():
            step.state = StepState.REUSED  # outputs delivered; nothing to journal
        return True

    def _summary(self, exit_code: int, status: RunStatus, started: float) -> RunSummary:
        self.journal.record(Event.RUN_END, status=status.value, exit_code=exit_code, peak_shm_bytes=self.peak_bytes)
        return RunSummary(
            pipeline=self.spec.name, run_id=self.run_id, shard_index=self.options.shard_index,
            shard_count=self.options.shard_count, exit_code=exit_code, status=status,
            wall_seconds=time.monotonic() - started, peak_shm_bytes=self.peak_bytes,
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
        self.journal.record(Event.PLAN, **shard_state.plan_fields(plan))
        shard_state.bring_back(plan, self.keys, self.store, self.checkpoints, self.run_id)
        for name in plan.reused:
            self._transition(name, StepState.REUSED)
        self.live_bytes += shard_state.committed_bytes(self.layout, self.store, plan.reused)
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        # Results of reused steps may not have been delivered (crash between commit and copy).
        for name in plan.reused:
            self.outputs.deliver_and_checkpoint(name)
        if plan.to_run:
            log.info("%s shard %d: running %s; reusing %s", self.spec.name, self.options.shard_index,
                     ", ".join(plan.to_run), ", ".join(plan.reused) or "nothing")

    def _start_supervisor(self) -> None:
        programs = [step_program(step, self.context, self.environments.paths_for(step))
                    for step in map(self.spec.step, self.to_run)]
        self.layout.supervisor_conf.write_text(render(self.supervisor.socket_path, self.layout.run_dir, programs))
        self.supervisor.start()

    # ---------------------------------------------------------------- loop
    def _loop(self) -> tuple[int, RunStatus]:
        for name in self.to_run:
            follower = LogFollower(self.layout.step_log(name), f"[{name}]", stream=self.log_stream)
            follower.start_at_end()
            self.followers[name] = follower
        self._free_unneeded()
        while True:
            if self.terminated and self.stop_reason is None:
                self.stop_reason = "stopped by SIGTERM"
            if self.stop_reason is not None:
                self._stop_all()
                failed = any(s.state is StepState.FAILED for s in self.steps.values())
                if self.terminated and not failed:
                    return EXIT_TERMINATED, RunStatus.TERMINATED
                return EXIT_FAILURE, RunStatus.FAILED
            unwatched = self._collect_exits()
            self._pump_logs()
            if self.stop_reason is not None:
                continue
            started = self._schedule()
            self._free_unneeded()
            if all(step.state.final or step.state.done for step in self.steps.values()):
                self._retire_all()
                return EXIT_OK, RunStatus.COMPLETED
            if started or unwatched:
                timeout = 0.0  # register the new processes' pidfds at once
            elif self.watcher.supported:
                timeout = self.options.idle_poll_interval  # a pidfd or a signal wakes us earlier
            else:
                timeout = self.options.poll_interval
            self.watcher.wait(timeout)

    def _collect_exits(self) -> bool:
        """Handle running steps that ended; watch the pids of the others. True if some has no pid yet."""
        infos = self.supervisor.all_info()
        unwatched = False
        for name, step in self.steps.items():
            if step.state is not StepState.RUNNING:
                continue
            info = infos.get(name)
            if info is not None and info.state in ENDED:
                self.watcher.forget(name)
                self._on_exit(step, info)
            elif info is not None and info.pid > 0 and not self.watcher.watching(name):
                self.watcher.watch(name, info.pid)
            elif info is None or info.pid <= 0:
                unwatched = True  # still starting: look again shortly
        return unwatched

    def _schedule(self) -> int:
        now = time.monotonic()
        for name in self.to_run:
            step = self.steps[name]
            if (step.state is StepState.WAITING and self._inputs_committed(name)) or \
                    (step.state is StepState.BACKOFF and now >= step.retry_at):
                self._transition(name, StepState.READY)
        running = sum(1 for step in self.steps.values() if step.state is StepState.RUNNING)
        started = 0
        for name in self.to_run:
            if running >= self.parallelism:
                break
            if self.steps[name].state is StepState.READY:
                self._start(self.steps[name])
                running += 1
                started += 1
        return started

    def _inputs_committed(self, name: str) -> bool:
        return all(self.steps[self.producers[data]].state.done for data in self.spec.step(name).inputs)

    def _start(self, step: StepRun) -> None:
        self.store.prepare_staging(step.name)
        step.attempts += 1
        step.started_at = time.monotonic()
        step.bytes_in = sum(self.store.size_of(self.producers[d], d) for d in self.spec.step(step.name).inputs)
        self._transition(step.name, StepState.RUNNING, attempt=step.attempts)
        self.supervisor.start_process(step.name)

    def _on_exit(self, step: StepRun, info: ProcessInfo) -> None:
        step.finished_at = time.monotonic()
        step.wall_seconds += step.finished_at - (step.started_at or step.finished_at)
        step.exit_code = diagnosis.exit_code_of(info)
        kill_leftovers(self.layout.supervisor_log, step.name)  # before the commit checks its outputs
        self.followers[step.name].pump()
        if not diagnosis.succeeded(info):
            self._fail_attempt(step, diagnosis.exit_reason(info, self.layout.supervisor_log))
            return
        self._transition(step.name, StepState.COMMITTING, exit_code=0)
        try:
            record = self.store.commit(step.name, self.keys[step.name], self.spec.step(step.name).outputs, self.run_id,
                                       admit=lambda adding: self.budget.admit(step.name, self.live_bytes, adding))
        except OutputRefused as exc:
            self._fail_attempt(step, str(exc))
            return
        step.bytes_out = sum(record.outputs.values())
        self.live_bytes += step.bytes_out
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        self._transition(step.name, StepState.COMMITTED, bytes_out=step.bytes_out, outputs=record.outputs)
        self.outputs.deliver_and_checkpoint(step.name)

    def _fail_attempt(self, step: StepRun, reason: str) -> None:
        follower = self.followers.get(step.name)
        # Before discarding: the staging bytes show a full shm.
        enospc = diagnosis.enospc_message(follower.last_lines(40) if follower else [], self.layout.shm_dir,
                                          self.live_bytes)
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
            return
        step.message = reason
        self._transition(step.name, StepState.FAILED, reason=reason, exit_code=step.exit_code)
        self.stop_reason = diagnosis.failure_message(step.name, step.attempts, reason)
        log.error("error: %s", self.stop_reason)
        tail = diagnosis.log_tail(step.name, self.layout.step_log(step.name),
                                  follower.last_lines(20) if follower else [])
        if tail:
            log.error("%s", tail)

    # ---------------------------------------------------- stop and signals
    def _stop_all(self) -> None:
        """SIGTERM every running step (supervisord sends SIGKILL after the grace period); start nothing new."""
        running = [s for s in self.steps.values() if s.state is StepState.RUNNING]
        for step in running:
            self.supervisor.stop_process(step.name)
        deadline = time.monotonic() + self.spec.grace_seconds + 10
        while running and time.monotonic() < deadline:
            infos = self.supervisor.all_info()
            if all(infos[s.name].state not in LIVE for s in running):
                break
            self._pump_logs()
            time.sleep(0.05)
        for step in self.steps.values():
            if step.state in UNFINISHED:
                if step.state is StepState.RUNNING:
                    step.wall_seconds += time.monotonic() - (step.started_at or time.monotonic())
                    kill_leftovers(self.layout.supervisor_log, step.name)
                self.store.discard_staging(step.name)
                self._transition(step.name, StepState.STOPPED, reason=self.stop_reason)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self.terminated = True

    # ------------------------------------------- results, checkpoints, free
    def _free_unneeded(self) -> None:
        done = [name for name, step in self.steps.items() if step.state.done]
        self.live_bytes -= self.outputs.free_unneeded(
            done, settled=lambda consumer: self.steps[consumer].state.done or consumer not in self.to_run)
        for name in done:
            if self._outputs_settled(name):
                self._transition(name, StepState.RETIRED)

    def _outputs_settled(self, name: str) -> bool:
        for data in self.spec.step(name).outputs:
            consumers = self.consumers.get(data, [])
            if any(not self.steps[c].state.done and not self.steps[c].state.final for c in consumers):
                return False
        return True

    def _retire_all(self) -> None:
        for name, step in self.steps.items():
            if step.state.done:
                self._transition(name, StepState.RETIRED)

    def _drain_copies(self) -> None:
        while self.copier.busy():
            if self.terminated:
                break
            time.sleep(0.01)
        self._free_unneeded()

    def _complete(self) -> None:
        missing = shard_state.mark_complete(self.spec, self.layout, self.keys, self.checkpoints, run_id=self.run_id,
                                            shard_index=self.options.shard_index,
                                            shard_count=self.options.shard_count)
        if missing:
            self.warnings.append(f"results not delivered: {', '.join(missing)}")

    # ------------------------------------------------------------- helpers
    def _transition(self, name: str, new: StepState, **fields: Any) -> None:
        step = self.steps[name]
        if step.state is new:
            return
        check_transition(name, step.state, new)
        old, step.state = step.state, new
        if self.options.on_transition is not None:
            self.options.on_transition(name, old, new)
        self.journal.record(Event.TRANSITION, step=name, **{"from": old.value, "to": new.value}, **fields)

    def _pump_logs(self) -> None:
        for follower in self.followers.values():
            follower.pump()
