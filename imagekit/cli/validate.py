"""`imagekit validate PATH`: parse and check a pipeline without running anything."""
from __future__ import annotations

from pathlib import Path

import typer

from imagekit_core.errors import SpecError
from imagekit_core.spec import load_pipeline
from imagekit_core.spec.problems import all_problems
from imagekit_core.spec.quantity import human_size

from .common import OutputFormat, emit_json, emit_text, print_error


def register(app: typer.Typer) -> None:
    @app.command()
    def validate(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Check a pipeline and its step packages; exit 2 with one line per problem (at most 20), each naming
        file, field and fix."""
        try:
            spec = load_pipeline(pipeline)
        except SpecError as exc:
            problems = all_problems(exc)
            for problem in problems:
                print_error(str(SpecError(problem.file, problem.field, problem.problem, problem.fix, line=problem.line)))
            raise typer.Exit(exc.exit_code) from None
        order = spec.topological_order()
        if output is OutputFormat.json:
            emit_json({
                "pipeline": spec.name,
                "file": str(spec.file),
                "steps": [{"name": s.name, "inputs": list(s.inputs), "outputs": list(s.outputs)} for s in spec.steps],
                "order": order,
                "shm_bytes": spec.shm_bytes,
                "shards": spec.shards,
                "results": list(spec.results),
            })
        else:
            emit_text(f"{spec.file}: ok — {len(spec.steps)} steps ({' → '.join(order)}), "
                         f"shm {human_size(spec.shm_bytes)}, {spec.shards} shard(s)")
