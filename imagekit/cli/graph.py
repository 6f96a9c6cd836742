"""`imagekit graph PIPELINE`: the dataflow graph — steps, the data names on the edges, the results marked."""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import typer

from imagekit_core.spec import PipelineSpec, load_pipeline


class GraphFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


@dataclass(frozen=True)
class Edge:
    source: str  # producing step
    target: str | None  # consuming step; None: the data is one of the pipeline's results
    data: str


def edges_of(spec: PipelineSpec) -> list[Edge]:
    """One edge per (producer, consumer, data), in step order; a result also gets an edge to the results."""
    consumers = spec.consumers_of()
    edges = []
    for step in spec.steps:
        for data in step.outputs:
            edges += [Edge(step.name, consumer, data) for consumer in consumers.get(data, [])]
            if data in spec.results:
                edges.append(Edge(step.name, None, data))
    return edges


def _mermaid_id(spec: PipelineSpec, step: str) -> str:
    return f"s{[s.name for s in spec.steps].index(step)}"


def to_mermaid(spec: PipelineSpec) -> str:
    lines = ["flowchart LR"]
    lines += [f'  {_mermaid_id(spec, step.name)}["{step.name}"]' for step in spec.steps]
    lines += [f'  r{index}[("{data}")]:::result' for index, data in enumerate(spec.results)]
    for edge in edges_of(spec):
        target = _mermaid_id(spec, edge.target) if edge.target else f"r{spec.results.index(edge.data)}"
        arrow = "-->" if edge.target else "==>"
        lines.append(f"  {_mermaid_id(spec, edge.source)} {arrow}|{edge.data}| {target}")
    lines.append("  classDef result fill:#e8f5e9,stroke:#2e7d32")
    return "\n".join(lines) + "\n"


def to_dot(spec: PipelineSpec) -> str:
    lines = [f"digraph {json.dumps(spec.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    lines += [f"  {json.dumps(step.name)};" for step in spec.steps]
    lines += [f"  {json.dumps('result:' + data)} [label={json.dumps(data)}, shape=cylinder, style=bold];"
              for data in spec.results]
    for edge in edges_of(spec):
        target = json.dumps(edge.target or f"result:{edge.data}")
        lines.append(f"  {json.dumps(edge.source)} -> {target} [label={json.dumps(edge.data)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_text(spec: PipelineSpec) -> str:
    edges = edges_of(spec)
    width = max([len(edge.source) for edge in edges] + [1])
    lines = [f"{spec.name}: {len(spec.steps)} steps, results: {', '.join(spec.results) or 'none'}"]
    for edge in edges:
        target = edge.target or "[result]"
        lines.append(f"  {edge.source:<{width}} --{edge.data}--> {target}")
    lonely = [step.name for step in spec.steps if not any(step.name in (e.source, e.target) for e in edges)]
    lines += [f"  {name} (no edges)" for name in lonely]
    return "\n".join(lines) + "\n"


def to_json(spec: PipelineSpec) -> str:
    return json.dumps({
        "pipeline": spec.name,
        "steps": [{"name": s.name, "inputs": list(s.inputs), "outputs": list(s.outputs)} for s in spec.steps],
        "edges": [{"from": e.source, "to": e.target, "data": e.data} for e in edges_of(spec) if e.target],
        "results": [{"data": e.data, "step": e.source} for e in edges_of(spec) if e.target is None],
    }, indent=2) + "\n"


RENDERERS = {GraphFormat.text: to_text, GraphFormat.mermaid: to_mermaid, GraphFormat.dot: to_dot,
             GraphFormat.json: to_json}


def register(app: typer.Typer) -> None:
    @app.command()
    def graph(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        fmt: GraphFormat = typer.Option(GraphFormat.text, "--format", "-f", "--output", "-o",
                                        help="text, mermaid (for Markdown), dot (Graphviz) or json"),
    ) -> None:
        """Print the dataflow graph: steps, the data names on the edges, the pipeline's results marked."""
        typer.echo(RENDERERS[fmt](load_pipeline(pipeline)), nl=False)
