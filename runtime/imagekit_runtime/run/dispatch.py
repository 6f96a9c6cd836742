"""Which step gets a process next: the conductor's bookkeeping, kept per event so that a transition
costs the same at 20 steps as at 200 (no pass over every step).

- A step is *runnable* once every input is committed: a READY step needs a process, a WARM one
  (its process waits at its gate) only its gate opened. Either needs a slot of its kind (cpu or io).
- A warm step is *in line* for an early start while it waits for inputs whose producers all have a
  process already (or are done); it then needs a warm slot only. In pipeline order, every time.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from imagekit_core.contract import StepKind
from imagekit_core.spec import PipelineSpec

from ..states import StepState
from .slots import Slots

HAS_PROCESS = (StepState.WARM, StepState.RUNNING)
STARTED_OR_DONE = (StepState.WARM, StepState.RUNNING, StepState.COMMITTING, StepState.COMMITTED,
                   StepState.REUSED, StepState.RETIRED)


@dataclass
class Dispatch:
    spec: PipelineSpec
    to_run: list[str]
    slots: Slots
    state_of: Callable[[str], StepState]
    order: dict[str, int] = field(init=False)
    missing: dict[str, int] = field(init=False)       # inputs of each step not committed yet
    producer_of: dict[str, str] = field(init=False)     # data -> the step making it
    producers: dict[str, set[str]] = field(init=False)  # step -> the steps making its inputs
    consumers: dict[str, set[str]] = field(init=False)  # step -> the steps reading its outputs
    busy: dict[StepKind, int] = field(init=False)     # released processes per kind
    warm: set[str] = field(default_factory=set)       # processes waiting at their gate
    _runnable: list[tuple[int, str]] = field(default_factory=list)
    _in_line: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.order = {name: index for index, name in enumerate(self.to_run)}
        self.producer_of = producer_of = self.spec.producer_of()
        self.producers = {step.name: {producer_of[d] for d in step.inputs} for step in self.spec.steps}
        self.consumers = {step.name: set() for step in self.spec.steps}
        for name, producers in self.producers.items():
            for producer in producers:
                self.consumers[producer].add(name)
        self.missing = {step.name: sum(1 for d in step.inputs if not self.state_of(producer_of[d]).done)
                        for step in self.spec.steps}
        self.busy = {kind: 0 for kind in StepKind}

    # ------------------------------------------------------------------ events
    def committed(self, name: str) -> list[str]:
        """A step's outputs were committed: the consumers whose last input that was."""
        now_complete = []
        for consumer in self.consumers[name]:
            inputs = self.spec.step(consumer).inputs
            self.missing[consumer] -= sum(1 for d in inputs if self.producer_of[d] == name)
            if self.missing[consumer] == 0 and consumer in self.order:
                now_complete.append(consumer)
        return now_complete

    def inputs_committed(self, name: str) -> bool:
        return self.missing[name] == 0

    def runnable(self, name: str) -> None:
        """READY, or WARM with every input committed: dispatch when a slot of its kind is free."""
        heapq.heappush(self._runnable, (self.order[name], name))

    def maybe_in_line(self, name: str) -> None:
        """Consider a waiting warm step for an early start (call when one of its producers got a process)."""
        step = self.spec.step(name)
        if (step.warm and name in self.order and self.state_of(name) is StepState.WAITING
                and all(self.state_of(p) in STARTED_OR_DONE for p in self.producers[name])):
            heapq.heappush(self._in_line, (self.order[name], name))

    def started(self, name: str) -> None:
        """A step got a process: its waiting warm consumers may come in line."""
        for consumer in self.consumers[name]:
            self.maybe_in_line(consumer)

    def freed_slot(self, name: str) -> None:
        self.busy[self.spec.step(name).kind] -= 1

    # -------------------------------------------------------------- decisions
    def next_runnable(self) -> list[str]:
        """The runnable steps that get a slot now, in pipeline order (each counted as taking it)."""
        chosen: list[str] = []
        kept: list[tuple[int, str]] = []
        while self._runnable:
            index, name = heapq.heappop(self._runnable)
            state = self.state_of(name)
            if name in chosen or state not in (StepState.READY, StepState.WARM) or \
                    (state is StepState.WARM and self.missing[name]):
                continue  # stale: stopped, dispatched, or pushed twice
            kind = self.spec.step(name).kind
            if self.busy[kind] < self.slots.limit(kind):
                self.busy[kind] += 1
                chosen.append(name)
            else:
                kept.append((index, name))
        for item in kept:
            heapq.heappush(self._runnable, item)
        return chosen

    def next_warm(self) -> list[str]:
        """The warm steps to start now, waiting at their gate: in line, while warm slots are free."""
        chosen: list[str] = []
        while self._in_line and len(self.warm) + len(chosen) < self.slots.warm:
            _, name = heapq.heappop(self._in_line)
            if self.state_of(name) is StepState.WAITING and self.missing[name] and name not in chosen:
                chosen.append(name)
        return chosen
