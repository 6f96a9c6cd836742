"""The program a step runs as: its argv and the environment the contract promises it (docs/contract.md)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagekit_core import contract
from imagekit_core.errors import SpecError
from imagekit_core.spec import StepSpec

from ..layout import RunLayout
from . import gates
from .config import ProgramSpec
from .environments import StepPaths


@dataclass(frozen=True)
class RunContext:
    """What every step of one run shares."""

    layout: RunLayout
    params: Mapping[str, str]      # the pipeline's params with --param overrides
    shard_index: int
    shard_count: int
    producers: Mapping[str, str]   # data name -> the step that makes it
    runtime_path: Path             # put on steps' PYTHONPATH for the `imagekit_runtime.step` helper
    grace_seconds: float


def done_fifo(run_dir: Path) -> Path:
    """The FIFO step.done() declares a step's outputs complete through (one per run, read by the conductor)."""
    return run_dir / contract.DONE_FIFO_NAME


def step_environment(step: StepSpec, run: RunContext, paths: StepPaths,
                     inherited: Mapping[str, str]) -> dict[str, str]:
    """Params, the step's own env, the contract's IMAGEKIT_* variables, PATH and PYTHONPATH."""
    environment = {
        **run.params,
        **dict(step.env),
        contract.SHARD_INDEX: str(run.shard_index),
        contract.SHARD_COUNT: str(run.shard_count),
        contract.RUN_DIR: str(run.layout.run_dir),
        contract.STEP: step.name,
        contract.DONE_FIFO: str(done_fifo(run.layout.run_dir)),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for data in step.inputs:
        environment[contract.input_var(data)] = str(run.layout.input_path(run.producers[data], data))
    for data in step.outputs:
        environment[contract.output_var(data)] = str(run.layout.output_path(step.name, data))
    if step.warm:
        environment[contract.INPUTS_GATE] = str(gates.gates_dir(run.layout.run_dir) / step.name)
    environment["PATH"] = os.pathsep.join([*(str(p) for p in paths.bin_dirs), str(gates.bin_dir(run.layout.run_dir)),
                                           inherited.get("PATH", os.defpath)])
    python_path = [*(str(p) for p in paths.python_paths), str(run.runtime_path)]
    if inherited.get("PYTHONPATH"):
        python_path.append(inherited["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(python_path)
    return environment


def step_argv(step: StepSpec, search_path: str) -> tuple[str, ...]:
    """The step's command with argv[0] made absolute: found on search_path, or relative to its directory."""
    argv = list(step.command)
    if os.sep not in argv[0]:
        resolved = shutil.which(argv[0], path=search_path)
        if resolved is None:
            raise SpecError(step.source_file, "command", f"program {argv[0]!r} not found on PATH",
                            "install it in the image or use a path relative to the step directory")
        argv[0] = resolved
    elif not os.path.isabs(argv[0]):
        argv[0] = str((step.directory / argv[0]).resolve())
    return tuple(argv)


def step_program(step: StepSpec, run: RunContext, paths: StepPaths,
                 inherited: Mapping[str, str] = os.environ) -> ProgramSpec:
    environment = step_environment(step, run, paths, inherited)
    return ProgramSpec(name=step.name, argv=step_argv(step, environment["PATH"]), directory=step.directory,
                       environment=environment, log_file=run.layout.step_log(step.name),
                       stop_wait_seconds=run.grace_seconds)
