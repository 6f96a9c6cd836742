"""`imagekit init DIR`: a new pipeline to start from — a Python step (using the step helper), a shell step
and a short README; it validates, runs with `imagekit run --local` and builds as it is."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import typer

from imagekit_core.contract import IN_PREFIX, OUT_PREFIX, SHARD_INDEX, env_name
from imagekit_core.errors import UsageError
from imagekit_core.spec import DEFAULT_BASE, NAME_RE, load_pipeline

DEFAULT_STEPS = ("generate", "summarize")

PYTHON_STEP = '''"""{name}: writes the `{output}` data for this shard (a Python step using imagekit's step helper)."""
from imagekit_runtime import step

shard = step.shard_index()
with step.open_output("{output}", "w") as out:  # written under a temporary name, committed when we exit 0
    for number in range(1000):
        out.write(f"shard {{shard}} line {{number}}\\n")
'''

SHELL_STEP = '''#!/bin/sh
# {name}: reads `{input}`, writes `{output}` (a shell step: the runtime's contract is the environment alone).
set -eu
lines=$(wc -l < "${in_var}")
echo "{name}: $lines lines from {input} on shard ${shard_var}" > "${out_var}"
'''

README = """# {pipeline}

Made by `imagekit init`. Steps, in order (each reads the data the one before writes):

{steps}

```sh
imagekit validate {directory}          # check the pipeline and its steps
imagekit graph {directory}             # the dataflow graph (--format mermaid|dot)
imagekit run {directory} --local --ssd /tmp/{pipeline}/ssd --pv /tmp/{pipeline}/pv --results /tmp/{pipeline}/results
imagekit build {directory} --tag REGISTRY/{pipeline}:dev   # or set IMAGEKIT_REPO and leave out --tag
```

A step is a directory with a `step.yaml` and its code; add one under `steps/` and list it in
`pipeline.yaml`. Steps meet only through named data: `{in_prefix}<NAME>` is an input's path,
`{out_prefix}<NAME>` where an output goes; exit 0 commits every output at once.
"""


@dataclass(frozen=True)
class ScaffoldStep:
    name: str
    python: bool
    input: str | None
    output: str


def plan_steps(names: list[str]) -> list[ScaffoldStep]:
    """The first step is a Python step, every later one a shell step reading the output of the one before."""
    steps: list[ScaffoldStep] = []
    for position, name in enumerate(names):
        if not NAME_RE.match(name):
            raise UsageError(f"--step {name!r}: a step name is lower-case letters, digits and '-' (fix: e.g. --step make-data)")
        if name in {step.name for step in steps}:
            raise UsageError(f"--step {name!r} given twice (fix: give each step its own name)")
        steps.append(ScaffoldStep(name, position == 0, steps[-1].output if steps else None, f"{name}-out"))
    return steps


def pipeline_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    return name or "pipeline"


def _write_step(root: Path, step: ScaffoldStep) -> None:
    directory = root / "steps" / step.name
    directory.mkdir(parents=True)
    command = "[python3, main.py]" if step.python else "[sh, run.sh]"
    inputs = f"inputs: [{step.input}]\n" if step.input else ""
    (directory / "step.yaml").write_text(f"name: {step.name}\ncommand: {command}\n{inputs}outputs: [{step.output}]\n")
    if step.python:
        (directory / "main.py").write_text(PYTHON_STEP.format(name=step.name, output=step.output))
    else:
        assert step.input is not None  # every step after the first reads the one before
        (directory / "run.sh").write_text(SHELL_STEP.format(
            name=step.name, input=step.input, output=step.output, shard_var=SHARD_INDEX,
            in_var=IN_PREFIX + env_name(step.input), out_var=OUT_PREFIX + env_name(step.output)))


def scaffold(directory: Path, names: list[str]) -> Path:
    """Write the pipeline into directory (new, or empty); the path of its pipeline.yaml."""
    steps = plan_steps(names)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory}: exists and is not an empty directory (fix: name a new directory)")
    name = pipeline_name(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for step in steps:
        _write_step(directory, step)
    (directory / "pipeline.yaml").write_text(
        f"name: {name}\nbase: {DEFAULT_BASE}   # any image with python3\n"
        f"steps: [{', '.join(f'steps/{step.name}' for step in steps)}]\n"
        f"shm: 256Mi          # memory for data in flight\nparallelism: 2\nshards: 1\n"
        f"results: [{steps[-1].output}]   # written whole to the results directory\n")
    listing = "\n".join(f"- `steps/{s.name}` ({'Python' if s.python else 'shell'}): "
                        f"{'reads `' + s.input + '`, ' if s.input else ''}writes `{s.output}`" for s in steps)
    (directory / "README.md").write_text(README.format(pipeline=name, steps=listing, directory=directory,
                                                       in_prefix=IN_PREFIX, out_prefix=OUT_PREFIX))
    return directory / "pipeline.yaml"


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        directory: Path = typer.Argument(..., help="where to create the pipeline (new or empty)"),
        step: list[str] = typer.Option(list(DEFAULT_STEPS), "--step", "-s",
                                       help="a step name, repeatable, in order: the first is a Python step, "
                                            "the others shell steps"),
    ) -> None:
        """Create a pipeline to start from: a Python step, a shell step and a README; it validates, runs and builds."""
        spec = load_pipeline(scaffold(directory, step))
        typer.echo(str(spec.file))
        typer.echo(f"created {spec.name} ({len(spec.steps)} steps) in {directory}; next: imagekit run {directory} --local",
                   err=True)
