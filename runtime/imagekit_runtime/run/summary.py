"""What a run reports at the end: per step its state, exit code, attempts, wall time and bytes; as text or JSON."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagekit_core.contract import RunStatus, Source
from imagekit_core.spec.quantity import human_size
from imagekit_core.spec.sources import SINK_STEP_PREFIX, SOURCE_STEP_PREFIX

from ..states import StepState


@dataclass
class StepRun:
    """One step's record during a run; the conductor updates it, the summary reports it."""

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
    inputs: dict[str, str] = field(default_factory=dict)  # input -> contract.Source, for a step that runs

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state.value, "attempts": self.attempts, "exit_code": self.exit_code,
            "wall_seconds": round(self.wall_seconds, 3), "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "message": self.message, "inputs": self.inputs,
        }


@dataclass
class RunSummary:
    pipeline: str
    run_id: str
    shard_index: int
    shard_count: int
    exit_code: int
    status: RunStatus
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
            "status": self.status.value,
            "wall_seconds": round(self.wall_seconds, 3),
            "peak_shm_bytes": self.peak_shm_bytes,
            "results_dir": self.results_dir,
            "message": self.message,
            "warnings": self.warnings,
            "steps": [step.to_json() for step in self.steps],
        }


def format_summary(summary: RunSummary) -> str:
    lines = [f"{summary.pipeline} shard {summary.shard_index}/{summary.shard_count}: {summary.status.value} "
             f"in {summary.wall_seconds:.2f}s (exit {summary.exit_code}); "
             f"peak shm {human_size(summary.peak_shm_bytes)}; results in {summary.results_dir}"]
    lines.append(f"  {'step':<20} {'state':<10} {'exit':>4} {'tries':>5} {'wall s':>8} {'in':>10} {'out':>10}")
    for step in summary.steps:
        exit_text = "-" if step.exit_code is None else str(step.exit_code)
        lines.append(f"  {step.name:<20} {step.state.value:<10} {exit_text:>4} {step.attempts:>5} "
                     f"{step.wall_seconds:>8.2f} {human_size(step.bytes_in):>10} {human_size(step.bytes_out):>10}")
    moved = [_throughput(step) for step in summary.steps if step.name.startswith((SOURCE_STEP_PREFIX, SINK_STEP_PREFIX))
             and step.state is not StepState.REUSED and step.wall_seconds > 0]
    if moved:
        lines.append(f"  transfers: {'; '.join(moved)}")
    kept = [f"{step.name} ← " + ", ".join(f"{data} ({source})" for data, source in step.inputs.items())
            for step in summary.steps if any(source != Source.RUN for source in step.inputs.values())]
    if kept:
        lines.append(f"  inputs from before this run: {'; '.join(kept)}")
    for warning in summary.warnings:
        lines.append(f"  warning: {warning}")
    if summary.message:
        lines.append(f"  {summary.message}")
    return "\n".join(lines)


def _throughput(step: StepRun) -> str:
    """A source's bytes fetched (its output) or a sink's uploaded (its input), and how fast."""
    moved = step.bytes_out if step.name.startswith(SOURCE_STEP_PREFIX) else step.bytes_in
    return f"{step.name} {human_size(moved)} in {step.wall_seconds:.2f}s ({human_size(int(moved / step.wall_seconds))}/s)"
