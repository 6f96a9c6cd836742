"""Fakes the conductor drives in process (as supervisor's tests drive process.py with DummyProcess): a step
host whose "processes" are Python functions run at spawn, and an echo that shows nothing.

A step's behaviour writes its outputs into its staging directory (as a step process would) and says how the
process ends: its exit status, whether it declared its outputs complete first (step.done()), how many of the
conductor's sleeps pass before the exit is seen, or that it runs until stopped. Everything else is real:
the data store in a temporary shm directory, commits, vetting, checkpoints, the copier, the journal.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagekit_core.spec import PipelineSpec, StepSpec, load_pipeline
from imagekit_runtime.checkpoint.store import CheckpointStore
from imagekit_runtime.data.copier import Copier
from imagekit_runtime.data.datastore import DataStore
from imagekit_runtime.layout import RunLayout
from imagekit_runtime.observe.journal import Journal, new_run_id, read_journal
from imagekit_runtime.run.conductor import Conductor
from imagekit_runtime.run.flags import RunFlags
from imagekit_runtime.run.options import Collaborators, RunOptions
from imagekit_runtime.run.shard_run import run_shard
from imagekit_runtime.run.summary import RunSummary
from imagekit_runtime.supervise.client import ProcessInfo
from imagekit_runtime.supervise.config import ProgramSpec
from imagekit_runtime.supervise.environments import StepPaths


@dataclass
class Outcome:
    code: int = 0            # exit status
    declare: bool = False    # step.done() before the exit
    ticks: int = 0           # conductor sleeps before the exit is seen
    hang: bool = False       # runs until stopped


@dataclass
class StepCall:
    """What a behaviour is given: the step's staging (outputs) and committed inputs, as its env would say."""

    name: str
    attempt: int
    layout: RunLayout
    producers: dict[str, str]

    def write(self, data: str, text: str = "x") -> Path:
        path = self.layout.staging_dir(self.name) / data
        path.write_text(text)
        return path

    def read(self, data: str) -> str:
        return self.layout.input_path(self.producers[data], data).read_text()

    def input_path(self, data: str) -> Path:
        return self.layout.input_path(self.producers[data], data)


Behaviour = Callable[[StepCall], Outcome]


def writes(*outputs: str, code: int = 0, **outcome: Any) -> Behaviour:
    """A step that writes each of `outputs` ("x", or its inputs' text joined) and exits with `code`."""
    def behave(call: StepCall) -> Outcome:
        for data in outputs:
            call.write(data, "x")
        return Outcome(code=code, **outcome)
    return behave


@dataclass
class FakeHost:
    """The StepHost of run/drives.py, with steps as functions. `events` lists what the conductor asked."""

    layout: RunLayout
    producers: dict[str, str]
    behaviours: dict[str, Behaviour]
    events: list[tuple[str, str]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    most_at_once: int = 0
    on_wait: Callable[[FakeHost], None] | None = None  # each conductor sleep: what happens meanwhile
    _running: set[str] = field(default_factory=set)
    _gated: set[str] = field(default_factory=set)
    _declared: set[str] = field(default_factory=set)
    _new_declarations: list[str] = field(default_factory=list)
    _pending: dict[str, tuple[int, ProcessInfo]] = field(default_factory=dict)  # name -> (ticks left, exit)

    @property
    def running(self) -> Collection[str]:
        return set(self._running)

    @property
    def declared(self) -> Collection[str]:
        return set(self._declared)

    @property
    def polls(self) -> bool:
        return False

    def start(self, programs: list[ProgramSpec]) -> None:
        self.events.append(("start", ",".join(program.name for program in programs)))

    def spawn(self, name: str, *, gated: bool, open_gate: bool) -> None:
        self.events.append(("spawn-gated" if gated and not open_gate else "spawn", name))
        self.attempts[name] = self.attempts.get(name, 0) + 1
        self._running.add(name)
        self._declared.discard(name)
        if gated and not open_gate:
            self._gated.add(name)
        self.most_at_once = max(self.most_at_once, len(self._running - self._gated))
        if name not in self._gated:
            self._work(name)

    def open_gate(self, name: str) -> None:
        self.events.append(("open", name))
        if name in self._gated:
            self._gated.discard(name)
            self.most_at_once = max(self.most_at_once, len(self._running - self._gated))
            self._work(name)

    def _work(self, name: str) -> None:
        call = StepCall(name, self.attempts[name], self.layout, self.producers)
        outcome = self.behaviours[name](call)
        if outcome.declare:
            self._new_declarations.append(name)
        if not outcome.hang:
            self.finish(name, outcome.code, outcome.ticks)

    def waiting_at_gate(self, name: str) -> bool:
        return name in self._gated and name not in self._pending

    def finish(self, name: str, code: int = 0, ticks: int = 0) -> None:
        """The step's process ends (seen after `ticks` sleeps); also for a gated one, ending before its gate."""
        self._pending[name] = (ticks, ProcessInfo(name=name, state="EXITED", exit_status=code, pid=0,
                                                  description=f"exit status {code}"))

    def declarations(self) -> list[str]:
        new, self._new_declarations = self._new_declarations, []
        self._declared.update(new)
        return new

    def exits(self) -> list[tuple[str, ProcessInfo]]:
        due = [name for name, (ticks, _) in self._pending.items() if ticks <= 0]
        return [(name, self._pending.pop(name)[1]) for name in due]

    def ended(self, name: str) -> None:
        self.events.append(("ended", name))
        self._running.discard(name)
        self._gated.discard(name)
        self._declared.discard(name)

    def stop(self, names: Iterable[str], grace_seconds: float, meanwhile: Callable[[], None]) -> None:
        stopped = sorted(names)
        self.events.append(("stop", ",".join(stopped)))
        for name in stopped:
            self._pending.pop(name, None)
            self._gated.discard(name)

    def wait(self, timeout: float | None, extra_fd: int | None) -> bool:
        if self.on_wait is not None:
            self.on_wait(self)
        self._pending = {name: (ticks - 1, info) for name, (ticks, info) in self._pending.items()}
        return False

    def wake(self) -> None:
        pass

    def shutdown(self) -> None:
        self.events.append(("shutdown", ""))

    def spawned(self) -> list[str]:
        return [name for kind, name in self.events if kind.startswith("spawn")]


class NoEcho:
    def timeout(self) -> float | None:
        return None

    def wake_fd(self) -> int | None:
        return None

    def after_wait(self, fd_readable: bool) -> None:
        pass

    def pump(self, name: str) -> None:
        pass

    def pump_all(self, final: bool = False) -> None:
        pass

    def last_lines(self, name: str, count: int) -> list[str]:
        return []

    def close(self) -> None:
        pass


class NoEnvironments:
    def paths_for(self, step: StepSpec) -> StepPaths:
        return StepPaths()


def write_pipeline(root: Path, steps: dict[str, dict[str, Any]], **settings: Any) -> PipelineSpec:
    """A pipeline of steps given as name -> step.yaml fields (inputs, outputs, retries, kind, warm)."""
    for name, fields in steps.items():
        directory = root / "steps" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "step.yaml").write_text(yaml.safe_dump({"name": name, "command": ["true"], **fields}))
    (root / "pipeline.yaml").write_text(yaml.safe_dump(
        {"name": "fake", "steps": [f"steps/{name}" for name in steps], "shm": "64Mi", **settings}))
    return load_pipeline(root / "pipeline.yaml")


@dataclass
class Harness:
    """A pipeline, its run's places under one temporary directory, and the fakes; `run()` is one run."""

    root: Path
    spec: PipelineSpec
    behaviours: dict[str, Behaviour]
    options: dict[str, Any] = field(default_factory=dict)
    on_wait: Callable[[FakeHost], None] | None = None
    host: FakeHost | None = None
    conductor: Conductor | None = None

    @property
    def layout(self) -> RunLayout:
        return RunLayout(shm_dir=self.root / "shm", run_dir=self.root / "shm" / "run",
                         results_dir=self.root / "results", ssd_dir=self.root / "ssd", pv_dir=self.root / "pv")

    def run(self, **options: Any) -> RunSummary:
        layout = self.layout
        layout.create()
        self.host = FakeHost(layout, self.spec.producer_of(), self.behaviours, on_wait=self.on_wait)
        journal, copier, warnings = Journal(layout.journal, new_run_id()), Copier(), list[str]()
        try:
            parts = Collaborators(
                store=DataStore(layout), checkpoints=CheckpointStore.for_spec(self.spec, layout, 0, warnings),
                copier=copier, journal=journal, host=self.host, echo=lambda names: NoEcho(),
                environments=NoEnvironments(), warnings=warnings)
            self.conductor = Conductor(self.spec, self.options_for(layout, {**self.options, **options}), parts)
            return run_shard(self.conductor)
        finally:
            copier.close()
            journal.close()

    def options_for(self, layout: RunLayout, given: dict[str, Any]) -> RunOptions:
        """What a run is given: names of RunFlags fields are flags (force, parallelism, shm_soft,
        hold_when_complete ...), the rest RunOptions fields (retry_backoff, params ...)."""
        flag_names = {f.name for f in dataclasses.fields(RunFlags)}
        flags = RunFlags(**{k: v for k, v in given.items() if k in flag_names})
        rest = {"retry_backoff": 0.001, "params": dict(self.spec.params), "hold": flags.hold_when_complete,
                **{k: v for k, v in given.items() if k not in flag_names}}
        return RunOptions(layout=layout, flags=flags, **rest)

    def journal(self) -> list[dict[str, Any]]:
        return list(read_journal(self.layout.journal))

    def transitions(self, step: str) -> list[str]:
        """The states a step went through in the newest run."""
        runs = [e["run"] for e in self.journal() if e["event"] == "run-start"]
        return [e["to"] for e in self.journal() if e["event"] == "transition" and e["step"] == step
                and e["run"] == runs[-1]]

    def last_plan(self) -> dict[str, Any]:
        return [e for e in self.journal() if e["event"] == "plan"][-1]

    def committed(self, step: str, data: str) -> bool:
        return os.path.lexists(self.layout.input_path(step, data))
