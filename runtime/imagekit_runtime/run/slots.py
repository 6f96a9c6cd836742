"""How many steps may run at once, per step kind, and how many warm steps may wait.

    cpu   parallelism.cpu, else the CPUs the pod may use: cgroup v2 cpu.max, else $IMAGEKIT_CPUS
          (deploy sets it from the pod's CPU limit), else the CPUs this process may run on
    io    parallelism.io, else 4 × the cpu limit
    warm  warm_slots, else the cpu limit: warm processes waiting at their gate count against this only

A whole number of slots, at least 1: a pod limited to 1.5 CPUs gets 2 cpu slots.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from imagekit_core import contract
from imagekit_core.contract import StepKind
from imagekit_core.errors import UsageError
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.quantity import QuantityError, parse_quantity

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


@dataclass(frozen=True)
class Slots:
    cpu: int
    io: int
    warm: int

    def limit(self, kind: StepKind) -> int:
        return self.cpu if kind is StepKind.CPU else self.io


def cgroup_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> Fraction | None:
    """The CPU limit of this cgroup (`200000 100000` is 2 CPUs); None when unlimited or unknown."""
    try:
        quota, _, period = cpu_max.read_text().strip().partition(" ")
    except OSError:
        return None
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return Fraction(int(quota), int(period))


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX, environ: dict[str, str] | None = None) -> int:
    """The CPUs this pod may use, as a whole number of slots (rounded up, at least 1)."""
    environ = dict(os.environ) if environ is None else environ
    limit = cgroup_cpus(cpu_max)
    if limit is None and environ.get(contract.CPUS):
        try:
            limit = parse_quantity(environ[contract.CPUS])
        except QuantityError as exc:
            raise UsageError(f"{contract.CPUS}={environ[contract.CPUS]!r}: {exc}") from None
    if limit is None:
        limit = Fraction(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, math.ceil(limit))


def resolve_slots(spec: PipelineSpec, cpu_override: int | None = None, cpus: int | None = None) -> Slots:
    """The run's slots: --parallelism (the cpu limit), then the pipeline, then the pod's CPUs."""
    cpu = cpu_override or spec.parallelism.cpu or cpus or available_cpus()
    io = spec.parallelism.io or contract.IO_PER_CPU * cpu
    return Slots(cpu=cpu, io=io, warm=spec.warm_slots or cpu)
