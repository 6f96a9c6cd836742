"""Small valid pipelines written to a directory, described as {step: (inputs, outputs)}."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import write_pipeline, write_step
from imagekit_core.spec import PipelineSpec, load_pipeline

#   gen ─┬─ square ─┬─ total ── final
#        └─ evens  ─┘
DIAMOND: dict[str, tuple[list[str], list[str]]] = {
    "gen": ([], ["numbers"]),
    "square": (["numbers"], ["squares"]),
    "evens": (["numbers"], ["evens"]),
    "total": (["squares", "evens"], ["total"]),
    "final": (["total"], ["final"]),
}


def write_graph(root: Path, graph: dict[str, tuple[list[str], list[str]]], name: str = "graph",
                **settings: Any) -> Path:
    """Step packages (each `true`) under root/steps and root/pipeline.yaml listing them in dict order."""
    for step, (inputs, outputs) in graph.items():
        write_step(root / "steps", step, "true\n", inputs=inputs, outputs=outputs)
    return write_pipeline(root, name, list(graph), **settings)


def load_graph(root: Path, graph: dict[str, tuple[list[str], list[str]]], **settings: Any) -> PipelineSpec:
    return load_pipeline(write_graph(root, graph, **settings))
