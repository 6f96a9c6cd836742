"""The conductor: drives supervisord so that a pipeline runs as a dataflow.

It starts a step when all its inputs are committed (at most `parallelism` at
once), commits its outputs on exit 0, retries with backoff or stops the
pipeline on failure, frees data nobody needs any more, and hands committed
outputs to the copier (results, checkpoints). Every state change goes through
`_transition`, which checks it against states.TRANSITIONS and journals it.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import results as results_io
from .checkpoint import CheckpointStore
from .copier import Copier, CopyJob
from .datastore import DataStore, remove_tree, shm_usage
from .leftovers import kill_leftovers
from .sandbox import OutputRefused
from .environments import EnvironmentProvider
from .exit_watch import ExitWatcher
from .errors import EXIT_FAILURE, EXIT_OK, EXIT_TERMINATED, SpecError
from .journal import Journal, new_run_id
from .keys import data_key, pipeline_key, step_keys
from .layout import RunLayout, tree_size
from .logs import LogFollower
from .availability import Availability
from .planner import Plan
from .spec import PipelineSpec, env_name, format_size
from .states import StepState, check_transition
from .supervisor_client import ProcessInfo, Supervisor
from .supervisor_conf import ProgramSpec, render

log = logging.getLogger("imagekit.runtime")

ENOSPC_TEXT = "No space left on device"


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


@dataclass
class StepRun:
    name: str
    state: StepState = StepState.WAITING
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    retry_at: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    wall_seconds: float = 0.0
    message: str = ""


@dataclass
class RunSummary:
    pipeline: str
    run_id: str
    shard_index: int
    shard_count: int
    exit_code: int
    status: str  # completed, failed, terminated, already-complete
    wall_seconds: float
    peak_shm_bytes: int
    steps: list[StepRun]
    results_dir: str
    message: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "run": self.run_id,
            "shard": {"index": self.shard_index, "count": self.shard_count},
            "exit_code": self.exit_code,
            "status": self.status,
            "wall_seconds": round(self.wall_seconds, 3),
            "peak_shm_bytes": self.peak_shm_bytes,
            "results_dir": self.results_dir,
            "message": self.message,
            "warnings": self.warnings,
            "steps": [
                {
                    "name": s.name, "state": s.state.value, "attempts": s.attempts, "exit_code": s.exit_code,
                    "wall_seconds": round(s.wall_seconds, 3), "bytes_in": s.bytes_in, "bytes_out": s.bytes_out,
                    "message": s.message,
                }
                for s in self.steps
            ],
        }


class Conductor:
    def __init__(self, spec: PipelineSpec, options: RunOptions, environments: EnvironmentProvider) -> None:
        self.spec = spec
        self.options = options
        self.layout = options.layout
        self.environments = environments
        self.store = DataStore(self.layout)
        self.run_id = new_run_id()
        self.params = {**dict(spec.params), **options.params}
        self.keys = step_keys(spec, options.shard_index, options.shard_count, self.params)
        self.producers = spec.producer_of()
        self.consumers = spec.consumers_of()
        self.parallelism = options.parallelism or spec.parallelism
        self.steps: dict[str, StepRun] = {step.name: StepRun(step.name) for step in spec.steps}
        self.followers: dict[str, LogFollower] = {}
        self.freed: set[tuple[str, str]] = set()
        self.live_bytes = 0
        self.peak_bytes = 0
        self.stop_reason: str | None = None
        self.terminated = False
        self.warnings: list[str] = []
        self.checkpoints = CheckpointStore.for_spec(spec, self.layout, options.shard_index, self.warnings)
        self.journal: Journal | None = None
        self.supervisor: Supervisor | None = None
        self.copier: Copier | None = None
        self.plan: Plan | None = None

    # ----------------------------------------------------------------- run
    def run(self) -> RunSummary:
        started = time.monotonic()
        self.layout.create()
        self.journal = Journal(self.layout.journal, self.run_id)
        self.journal.record("run-start", pipeline=self.spec.name, shard=self.options.shard_index,
                            shard_count=self.options.shard_count, key=pipeline_key(self.keys))
        previous_handlers = self._install_signal_handlers()
        socket_dir = _short_tempdir(self.layout.run_dir)
        try:
            marker = results_io.read_completion(self.layout.completion_marker)
            if marker and marker.get("key") == pipeline_key(self.keys) and not self.options.force:
                log.info("shard %d of %s is already complete (%s); nothing to do — use --force to run again",
                         self.options.shard_index, self.spec.name, self.layout.completion_marker)
                self.journal.record("run-end", status="already-complete", exit_code=EXIT_OK)
                for name in self.steps:
                    self.steps[name].state = StepState.REUSED  # outputs delivered; nothing to journal
                return self._summary(EXIT_OK, "already-complete", started)
            if self.options.force:
                self._forget_everything()
            self.copier = Copier()
            self._recover()
            assert self.plan is not None
            self.supervisor = self._start_supervisor(socket_dir)
            exit_code, status = self._loop()
            self._drain_copies()
            if exit_code == EXIT_OK:
                self._complete()
            return self._summary(exit_code, status, started)
        finally:
            if self.supervisor is not None:
                self.supervisor.shutdown()
            for follower in self.followers.values():
                follower.pump(final=True)
            if self.copier is not None:
                self.copier.close()
            for step in self.steps.values():
                if step.state in (StepState.RUNNING, StepState.READY, StepState.BACKOFF, StepState.WAITING):
                    self.store.discard_staging(step.name)
            self._restore_signal_handlers(previous_handlers)
            shutil.rmtree(socket_dir, ignore_errors=True)
            if self.journal is not None:
                self.journal.close()

    def _summary(self, exit_code: int, status: str, started: float) -> RunSummary:
        if self.journal is not None and status != "already-complete":
            self.journal.record("run-end", status=status, exit_code=exit_code, peak_shm_bytes=self.peak_bytes)
        return RunSummary(
            pipeline=self.spec.name, run_id=self.run_id, shard_index=self.options.shard_index,
            shard_count=self.options.shard_count, exit_code=exit_code, status=status,
            wall_seconds=time.monotonic() - started, peak_shm_bytes=self.peak_bytes,
            steps=[self.steps[name] for name in self.spec.topological_order()],
            results_dir=str(self.layout.results_dir), message=self.stop_reason or "",
            warnings=self.warnings + (self.copier.errors if self.copier else []),
        )

    # ------------------------------------------------------------ recovery
    def _forget_everything(self) -> None:
        for step in self.spec.steps:
            self.store.drop_step(step.name)
        remove_tree(self.layout.completion_marker)

    def _recover(self) -> None:
        """Plan from what survived: shm first, then SSD, then PV; restore into shm what must come back."""
        remove_tree(self.layout.staging_root)  # half-written outputs of a crashed run are never committed
        self.checkpoints.clean_temporaries()
        self.layout.staging_root.mkdir(parents=True, exist_ok=True)
        self._drop_stale_commits()

        self.plan = Availability(self.spec, self.layout, self.keys, self.store, self.checkpoints,
                                 ignore_existing=self.options.force).plan()
        self.journal.record("plan", to_run=self.plan.to_run, reused=self.plan.reused,  # type: ignore[union-attr]
                            restore={f"{s}/{d}": src for (s, d), src in self.plan.restore.items()},
                            available={f"{s}/{d}": src for (s, d), src in self.plan.available.items()})
        for (step, data), source in sorted(self.plan.restore.items()):
            log.info("restoring %s (made by %s) from the %s checkpoint", data, step, source)
            self.checkpoints.restore(step, data, self.keys[step], source, self.run_id)
        for name in self.plan.reused:
            self._transition(name, StepState.REUSED)
            record = self.store.read_record(name)
            if record is not None:
                self.live_bytes += sum(size for data, size in record.outputs.items()
                                       if os.path.lexists(self.layout.input_path(name, data)))
        for name in self.plan.to_run:
            self.store.drop_step(name)  # its old outputs (other key, or partly missing) must not be read
        self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        # Results of reused steps may not have been delivered (crash between commit and copy).
        for name in self.plan.reused:
            self._deliver_and_checkpoint(name)
        if self.plan.to_run:
            log.info("%s shard %d: running %s; reusing %s", self.spec.name, self.options.shard_index,
                     ", ".join(self.plan.to_run), ", ".join(self.plan.reused) or "nothing")

    def _drop_stale_commits(self) -> None:
        """Committed data whose key no longer matches (a changed step, other params) is removed from shm."""
        for step in self.spec.steps:
            record = self.store.read_record(step.name)
            if record is not None and record.key != self.keys[step.name]:
                log.info("step %s changed since its outputs were committed: they will be made again", step.name)
                self.store.drop_step(step.name)
            elif record is None and self.layout.committed_dir(step.name).exists():
                self.store.drop_step(step.name)

    # ---------------------------------------------------------- supervisor
    def _start_supervisor(self, socket_dir: Path) -> Supervisor:
        programs = [self._program(self.spec.step(name)) for name in self.plan.to_run]  # type: ignore[union-attr]
        socket_path = socket_dir / "supervisor.sock"
        self.layout.supervisor_conf.write_text(render(socket_path, self.layout.run_dir, programs))
        supervisor = Supervisor(self.layout.supervisor_conf, socket_path, self.layout.run_dir / "supervisord.log",
                                pass_fds=self.options.inherit_fds)
        supervisor.start()
        return supervisor

    def _program(self, step) -> ProgramSpec:  # type: ignore[no-untyped-def]
        paths = self.environments.paths_for(step)
        environment = {
            **self.params,
            **dict(step.env),
            "IMAGEKIT_SHARD_INDEX": str(self.options.shard_index),
            "IMAGEKIT_SHARD_COUNT": str(self.options.shard_count),
            "IMAGEKIT_RUN_DIR": str(self.layout.run_dir),
            "IMAGEKIT_STEP": step.name,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for data in step.inputs:
            environment[f"IMAGEKIT_IN_{env_name(data)}"] = str(self.layout.input_path(self.producers[data], data))
        for data in step.outputs:
            environment[f"IMAGEKIT_OUT_{env_name(data)}"] = str(self.layout.output_path(step.name, data))
        search_path = os.pathsep.join([*(str(p) for p in paths.bin_dirs), os.environ.get("PATH", os.defpath)])
        environment["PATH"] = search_path
        python_path = [*(str(p) for p in paths.python_paths), str(self.options.runtime_path)]
        if os.environ.get("PYTHONPATH"):
            python_path.append(os.environ["PYTHONPATH"])
        environment["PYTHONPATH"] = os.pathsep.join(python_path)
        argv = list(step.command)
        if os.sep not in argv[0]:
            resolved = shutil.which(argv[0], path=search_path)
            if resolved is None:
                raise SpecError(step.source_file, "command", f"program {argv[0]!r} not found on PATH",
                                "install it in the image or use a path relative to the step directory")
            argv[0] = resolved
        else:
            argv[0] = str((step.directory / argv[0]).resolve()) if not os.path.isabs(argv[0]) else argv[0]
        return ProgramSpec(name=step.name, argv=tuple(argv), directory=step.directory, environment=environment,
                           log_file=self.layout.step_log(step.name),
                           stop_wait_seconds=self.spec.grace_seconds)

    # ---------------------------------------------------------------- loop
    def _loop(self) -> tuple[int, str]:
        assert self.supervisor is not None
        for name in self.plan.to_run:  # type: ignore[union-attr]
            follower = LogFollower(self.layout.step_log(name), f"[{name}]")
            if self.options.quiet_steps:
                follower.stream = open(os.devnull, "w")
            follower.start_at_end()
            self.followers[name] = follower
        self._free_unneeded()
        watcher = ExitWatcher()
        try:
            return self._conduct(watcher)
        finally:
            watcher.close()

    def _conduct(self, watcher: ExitWatcher) -> tuple[int, str]:
        assert self.supervisor is not None
        while True:
            if self.terminated and self.stop_reason is None:
                self.stop_reason = "stopped by SIGTERM"
            if self.stop_reason is not None:
                self._stop_all()
                failed = [s for s in self.steps.values() if s.state is StepState.FAILED]
                if self.terminated and not failed:
                    return EXIT_TERMINATED, "terminated"
                return EXIT_FAILURE, "failed"
            infos = self.supervisor.all_info()
            unwatched = False
            for name, step in self.steps.items():
                if step.state is not StepState.RUNNING:
                    continue
                info = infos.get(name)
                if info is not None and info.state in ("EXITED", "FATAL", "STOPPED", "BACKOFF", "UNKNOWN"):
                    watcher.forget(name)
                    self._on_exit(step, info)
                elif info is not None and info.pid > 0 and not watcher.watching(name):
                    watcher.watch(name, info.pid)
                elif info is None or info.pid <= 0:
                    unwatched = True  # still starting: look again shortly
            self._pump_logs()
            if self.stop_reason is not None:
                continue
            started = self._schedule()
            self._free_unneeded()
            if all(step.state.final or step.state.done for step in self.steps.values()):
                self._retire_all()
                return EXIT_OK, "completed"
            if started or unwatched:
                timeout = 0.0  # register the new processes' pidfds at once
            elif watcher.supported:
                timeout = self.options.idle_poll_interval  # a pidfd or a signal wakes us earlier
            else:
                timeout = self.options.poll_interval
            watcher.wait(timeout)

    def _schedule(self) -> int:
        now = time.monotonic()
        for name in self.plan.to_run:  # type: ignore[union-attr]
            step = self.steps[name]
            if step.state is StepState.WAITING and self._inputs_committed(name):
                self._transition(name, StepState.READY)
            elif step.state is StepState.BACKOFF and now >= step.retry_at:
                self._transition(name, StepState.READY)
        running = sum(1 for step in self.steps.values() if step.state is StepState.RUNNING)
        started = 0
        for name in self.plan.to_run:  # type: ignore[union-attr]
            if running >= self.parallelism:
                break
            step = self.steps[name]
            if step.state is StepState.READY:
                self._start(step)
                running += 1
                started += 1
        return started

    def _inputs_committed(self, name: str) -> bool:
        return all(self.steps[self.producers[data]].state.done for data in self.spec.step(name).inputs)

    def _start(self, step: StepRun) -> None:
        assert self.supervisor is not None
        self.store.prepare_staging(step.name)
        step.attempts += 1
        step.started_at = time.monotonic()
        step.bytes_in = sum(tree_size(self.layout.input_path(self.producers[d], d)) for d in self.spec.step(step.name).inputs)
        self._transition(step.name, StepState.RUNNING, attempt=step.attempts)
        self.supervisor.start_process(step.name)

    def _on_exit(self, step: StepRun, info: ProcessInfo) -> None:
        step.finished_at = time.monotonic()
        step.wall_seconds += step.finished_at - (step.started_at or step.finished_at)
        step.exit_code = info.exit_status if info.state == "EXITED" else -1
        kill_leftovers(self.layout.run_dir / "supervisord.log", step.name)  # before the commit checks its outputs
        self.followers[step.name].pump()
        if info.state == "EXITED" and info.exit_status == 0:
            self._transition(step.name, StepState.COMMITTING, exit_code=0)
            spec = self.spec.step(step.name)
            try:
                record = self.store.commit(step.name, self.keys[step.name], spec.outputs, self.run_id)
            except OutputRefused as exc:
                self._fail_attempt(step, str(exc))
                return
            step.bytes_out = sum(record.outputs.values())
            self.live_bytes += step.bytes_out
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            self._transition(step.name, StepState.COMMITTED, bytes_out=step.bytes_out)
            self._deliver_and_checkpoint(step.name)
            return
        if info.state == "EXITED" and info.exit_status < 0:
            reason = self._supervisor_exit_reason(step.name) or "was killed by a signal"
        elif info.state == "EXITED":
            reason = f"exited with status {info.exit_status}"
        elif info.state == "FATAL":
            reason = f"could not be started ({info.description or 'spawn error'}; see {self.layout.run_dir / 'supervisord.log'})"
        else:
            reason = f"ended in supervisord state {info.state} ({info.description})"
        self._fail_attempt(step, reason)

    def _supervisor_exit_reason(self, name: str) -> str:
        """supervisord's own words for how a process ended ("terminated by SIGKILL"), from its log."""
        try:
            with open(self.layout.run_dir / "supervisord.log", "rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 16384))
                tail = log_file.read().decode(errors="replace")
        except OSError:
            return ""
        for line in reversed(tail.splitlines()):
            marker = f"exited: {name} ("
            if marker in line:
                detail = line.split(marker, 1)[1].split(";")[0].rstrip(")")
                return f"was {detail}" if detail.startswith("terminated") else detail
        return ""

    def _fail_attempt(self, step: StepRun, reason: str) -> None:
        enospc = self._enospc_message(step.name)  # before discarding: the staging bytes show a full shm
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
        tail = self.followers[step.name].last_lines(20) if step.name in self.followers else []
        attempts = f" after {step.attempts} attempt{'s' if step.attempts != 1 else ''}"
        self.stop_reason = f"step {step.name} failed{attempts}: {reason}"
        log.error("error: %s", self.stop_reason)
        if tail:
            log.error("last lines of %s:\n%s", self.layout.step_log(step.name),
                      "\n".join(f"  [{step.name}] {line}" for line in tail))

    def _enospc_message(self, name: str) -> str:
        follower = self.followers.get(name)
        logged = follower is not None and any(ENOSPC_TEXT in line for line in follower.last_lines(40))
        size, used = shm_usage(self.layout.shm_dir)
        if logged or (size and size - used < 64 * 1024):
            return (f"shared memory is full ({ENOSPC_TEXT}) in {self.layout.shm_dir}: "
                    f"shm size {format_size(size)}, {format_size(used)} in use, "
                    f"{format_size(self.live_bytes)} of it committed pipeline data; "
                    f"raise `shm` in the pipeline or the size of {self.layout.shm_dir}")
        return ""

    # ---------------------------------------------------- stop and signals
    def _stop_all(self) -> None:
        """SIGTERM every running step (supervisord sends SIGKILL after the grace period); start nothing new."""
        assert self.supervisor is not None
        running = [s for s in self.steps.values() if s.state is StepState.RUNNING]
        for step in running:
            self.supervisor.stop_process(step.name)
        deadline = time.monotonic() + self.spec.grace_seconds + 10
        while running and time.monotonic() < deadline:
            infos = self.supervisor.all_info()
            if all(infos[s.name].state not in ("RUNNING", "STARTING", "STOPPING") for s in running):
                break
            self._pump_logs()
            time.sleep(0.05)
        for step in self.steps.values():
            if step.state in (StepState.RUNNING, StepState.READY, StepState.BACKOFF, StepState.WAITING):
                if step.state is StepState.RUNNING:
                    step.wall_seconds += time.monotonic() - (step.started_at or time.monotonic())
                    kill_leftovers(self.layout.run_dir / "supervisord.log", step.name)
                self.store.discard_staging(step.name)
                self._transition(step.name, StepState.STOPPED, reason=self.stop_reason)

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def on_signal(signum: int, _frame: Any) -> None:
            self.terminated = True

        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, on_signal)
        except ValueError:  # not the main thread (embedded use)
            pass
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    # ------------------------------------------- results, checkpoints, free
    def _deliver_and_checkpoint(self, name: str) -> None:
        assert self.copier is not None
        key = self.keys[name]
        for data in self.spec.step(name).outputs:
            source = self.layout.input_path(name, data)
            if not os.path.lexists(source):
                continue
            if data in self.spec.results and not results_io.delivered(self.layout.results_dir, data, key):
                self.copier.submit(CopyJob(
                    description=f"delivering result {data}", owner=(name, data),
                    action=lambda s=source, d=data: results_io.deliver(s, self.layout.results_dir, d, key)))
            for job in self.checkpoints.jobs_for(name, data, key, source, self.run_id,
                                                 on_written=lambda tier, path, d=data: self._journal_checkpoint(name, d, tier, path)):
                self.copier.submit(job)

    def _journal_checkpoint(self, step: str, data: str, tier: str, path: Path) -> None:
        if self.journal is not None:
            self.journal.record("checkpointed", step=step, data=data, tier=tier, path=str(path))

    def _free_unneeded(self) -> None:
        assert self.copier is not None
        for name, step in self.steps.items():
            if not step.state.done:
                continue
            for data in self.spec.step(name).outputs:
                if (name, data) in self.freed or data in self.spec.results:
                    continue
                consumers = self.consumers.get(data, [])
                if not consumers:
                    continue  # a final output nobody reads is kept like a result
                if not all(self.steps[c].state.done or self.steps[c].state is StepState.SKIPPED or
                           (c not in self.plan.to_run) for c in consumers):  # type: ignore[union-attr]
                    continue
                if self.copier.pending(name, data):
                    continue  # still being copied to a checkpoint
                if not os.path.lexists(self.layout.input_path(name, data)):
                    self.freed.add((name, data))
                    continue
                released = self.store.free(name, data)
                self.freed.add((name, data))
                self.live_bytes -= released
                if self.journal:
                    self.journal.record("freed", step=name, data=data, bytes=released)
        for name, step in self.steps.items():
            if step.state.done and self._outputs_settled(name):
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
        assert self.copier is not None
        while self.copier.busy():
            if self.terminated:
                break
            time.sleep(0.01)
        self._free_unneeded()

    def _complete(self) -> None:
        missing = [d for d in self.spec.results
                   if not results_io.delivered(self.layout.results_dir, d, self.keys[self.producers[d]])]
        if missing:
            self.warnings.append(f"results not delivered: {', '.join(missing)}")
            return
        results_io.write_completion(self.layout.completion_marker, {
            "pipeline": self.spec.name, "key": pipeline_key(self.keys), "run": self.run_id,
            "shard": self.options.shard_index, "shard_count": self.options.shard_count,
            "completed_at": time.time(), "results": list(self.spec.results),
        })
        keep = {data_key(self.keys[step.name], data) for step in self.spec.steps for data in step.outputs}
        for removed in self.checkpoints.prune(keep, self.spec.checkpoint.retention):
            log.info("pruned old checkpoint %s", removed)

    # ------------------------------------------------------------- helpers
    def _transition(self, name: str, new: StepState, **fields: Any) -> None:
        step = self.steps[name]
        if step.state is new:
            return
        check_transition(name, step.state, new)
        old, step.state = step.state, new
        if self.options.on_transition is not None:
            self.options.on_transition(name, old, new)
        if self.journal is not None:
            self.journal.record("transition", step=name, **{"from": old.value, "to": new.value}, **fields)

    def _pump_logs(self) -> None:
        for follower in self.followers.values():
            follower.pump()


def _short_tempdir(run_dir: Path) -> Path:
    """A directory for the supervisord socket: unix socket paths must stay under ~100 bytes."""
    for parent in (os.environ.get("TMPDIR"), "/tmp", str(run_dir)):
        if parent and os.access(parent, os.W_OK) and len(parent) < 60:
            return Path(tempfile.mkdtemp(prefix="ik-", dir=parent))
    return Path(tempfile.mkdtemp(prefix="ik-"))
