"""Decide which steps must run, from what is already available, as a build system does.

Targets are the pipeline's results and every output nobody consumes. Walking
back from the targets, a step runs when one of its needed outputs is available
nowhere (not in shm, not in any intact checkpoint); its inputs then become
needed in turn. Everything else is reused, never re-run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from imagekit_core.contract import Source
from imagekit_core.spec import PipelineSpec

# Where a data item can be found, best first.
SOURCES = (Source.SHM, Source.SSD, Source.PV)


@dataclass
class Plan:
    to_run: list[str]  # in topological order
    reused: list[str]  # steps whose outputs are taken from where they are
    restore: dict[tuple[str, str], str] = field(default_factory=dict)  # (step, data) -> source outside shm
    available: dict[tuple[str, str], str | None] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # step to run -> its input -> Source


def targets_of(spec: PipelineSpec) -> list[str]:
    consumers = spec.consumers_of()
    targets = list(spec.results)
    for step in spec.steps:
        for data in step.outputs:
            if not consumers.get(data) and data not in targets:
                targets.append(data)
    return targets


def make_plan(
    spec: PipelineSpec,
    locate: Callable[[str, str], str | None],
    delivered: Callable[[str], bool],
    step_recorded: Callable[[str], bool],
) -> Plan:
    """locate(step, data) -> best source or None; delivered(data) -> result already in the results dir;
    step_recorded(step) -> a step without outputs already ran with the current key."""
    producers = spec.producer_of()
    order = spec.topological_order()
    targets = targets_of(spec)
    needed: set[str] = {data for data in targets if not delivered(data)}
    to_run: set[str] = set()
    where: dict[tuple[str, str], str | None] = {}
    for name in reversed(order):
        step = spec.step(name)
        if not step.outputs:
            must_run = not step_recorded(name)
        else:
            must_run = False
            for data in step.outputs:
                if data in needed:
                    where[(name, data)] = locate(name, data)
                    if where[(name, data)] is None:
                        must_run = True
        if must_run:
            to_run.add(name)
            needed.update(step.inputs)
    restore: dict[tuple[str, str], str] = {}
    for data in needed:
        source = where.get((producers[data], data))
        if producers[data] not in to_run and source is not None and source != Source.SHM:
            restore[(producers[data], data)] = source
    return Plan(
        to_run=[name for name in order if name in to_run],
        reused=[name for name in order if name not in to_run],
        restore=restore,
        available=where,
        targets=targets,
        inputs={name: _input_sources(spec, name, to_run, where) for name in order if name in to_run},
    )


def _input_sources(spec: PipelineSpec, name: str, to_run: set[str],
                   where: dict[tuple[str, str], str | None]) -> dict[str, str]:
    """Where each input of a step that runs comes from: made in this run, else where its producer's output is."""
    producers = spec.producer_of()
    sources: dict[str, str] = {}
    for data in spec.step(name).inputs:
        found = None if producers[data] in to_run else where.get((producers[data], data))
        sources[data] = found or Source.RUN
    return sources
