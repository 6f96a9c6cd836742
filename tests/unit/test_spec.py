"""Parsing valid pipelines and steps, and the graph logic: order, producers, consumers, and what is refused."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from imagekit_core.contract import StepKind
from imagekit_core.errors import EXIT_BAD_INPUT, SpecError
from imagekit_core.spec import CheckpointSpec, Parallelism, load_pipeline, load_step

from .graphs import DIAMOND, load_graph, write_graph


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_minimal_pipeline_gets_the_documented_defaults(tmp_path: Path) -> None:
    write(tmp_path / "steps" / "only" / "step.yaml", "name: only\ncommand: [sh, run.sh]\n")
    path = write(tmp_path / "pipeline.yaml", "name: tiny\nsteps: [steps/only]\n")
    spec = load_pipeline(path)
    assert spec.name == "tiny"
    assert spec.file == path.resolve()
    assert spec.directory == tmp_path.resolve()
    assert spec.base == "python:3.11-slim-bookworm"
    assert spec.shm_bytes == 1024**3
    assert spec.parallelism == Parallelism(cpu=None, io=None)  # the run's CPUs, and 4 × that for io steps
    assert spec.warm_slots is None
    assert spec.shards == 1
    assert spec.results == ()
    assert spec.params == ()
    assert spec.grace_seconds == 10.0
    assert spec.checkpoint == CheckpointSpec(ssd=Path("/var/lib/imagekit/ssd"), pv=Path("/var/lib/imagekit/pv"),
                                             major=(), retention=2)
    (step,) = spec.steps
    assert (step.name, step.command, step.inputs, step.outputs) == ("only", ("sh", "run.sh"), (), ())
    assert (step.retries, step.env, step.requirements) == (0, (), None)
    assert (step.kind, step.warm) == (StepKind.CPU, False)
    assert step.directory == (tmp_path / "steps" / "only").resolve()
    assert step.source_file == (tmp_path / "steps" / "only" / "step.yaml").resolve()


def test_a_directory_stands_for_its_pipeline_yaml(tmp_path: Path) -> None:
    write_graph(tmp_path, DIAMOND)
    assert load_pipeline(tmp_path) == load_pipeline(tmp_path / "pipeline.yaml")
    assert load_pipeline(str(tmp_path)).file == (tmp_path / "pipeline.yaml").resolve()


def test_every_pipeline_setting_is_read(tmp_path: Path) -> None:
    spec = load_graph(
        tmp_path, DIAMOND, base="registry.example:5000/team/py:3.11", shm="256Mi", parallelism=3, shards=4,
        results=["final", "evens"], grace_seconds=2.5,
        params={"WORDFREQ_BYTES": "8Mi", "COUNT": 20000, "FLAG": True},
        checkpoint={"ssd": "/mnt/ssd", "pv": None, "major": ["squares", "total"], "retention": 5},
    )
    assert spec.base == "registry.example:5000/team/py:3.11"
    assert spec.shm_bytes == 256 * 1024**2
    assert (spec.parallelism, spec.shards, spec.grace_seconds) == (Parallelism(cpu=3), 4, 2.5)
    assert spec.results == ("final", "evens")
    # params are strings, sorted by name, whatever YAML made of them
    assert spec.params == (("COUNT", "20000"), ("FLAG", "True"), ("WORDFREQ_BYTES", "8Mi"))
    assert spec.checkpoint == CheckpointSpec(ssd=Path("/mnt/ssd"), pv=None, major=("squares", "total"), retention=5)


def test_parallelism_per_kind_warm_slots_and_step_kinds(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, DIAMOND, parallelism={"cpu": 2, "io": 16}, warm_slots=3)
    assert (spec.parallelism, spec.warm_slots) == (Parallelism(cpu=2, io=16), 3)
    assert load_graph(tmp_path / "io-only", DIAMOND, parallelism={"io": 5}).parallelism == Parallelism(io=5)
    write(tmp_path / "k" / "steps" / "fetch" / "step.yaml",
          "name: fetch\ncommand: [sh, run.sh]\nkind: io\nwarm: true\noutputs: [page]\n")
    write(tmp_path / "k" / "steps" / "parse" / "step.yaml",
          "name: parse\ncommand: [python3, main.py]\nwarm: false\ninputs: [page]\n")
    spec = load_pipeline(write(tmp_path / "k" / "pipeline.yaml", "name: k\nsteps: [steps/fetch, steps/parse]\n"))
    assert [(s.kind, s.warm) for s in spec.steps] == [(StepKind.IO, True), (StepKind.CPU, False)]
    assert spec.step("parse").inputs == ("page",)


def test_checkpoint_tiers_can_both_be_turned_off(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, DIAMOND, checkpoint={"ssd": None, "pv": False})
    assert (spec.checkpoint.ssd, spec.checkpoint.pv) == (None, None)


@pytest.mark.parametrize(("shm", "expected"), [
    ("1Gi", 1024**3), ("512Mi", 512 * 1024**2), ("100M", 100 * 1000**2), (4096, 4096), ("2Gi", 2 * 1024**3),
])
def test_shm_is_a_kubernetes_quantity(tmp_path: Path, shm: object, expected: int) -> None:
    assert load_graph(tmp_path, DIAMOND, shm=shm).shm_bytes == expected


def test_every_step_setting_is_read(tmp_path: Path) -> None:
    step_dir = tmp_path / "tokenize"
    write(step_dir / "requirements.txt", "numpy==1.26.4\n")
    write(step_dir / "step.yaml", """
        name: tokenize
        command: "python3 main.py --label 'a b' 3"
        inputs: corpus
        outputs: [tokens, vocab]
        requirements: requirements.txt
        retries: 2
        env: {ZETA: 1, ALPHA: "x y"}
        description: turns text into token ids
    """)
    step = load_step(step_dir)
    assert step.name == "tokenize"
    assert step.command == ("python3", "main.py", "--label", "a b", "3")  # a string is split as a shell would
    assert step.inputs == ("corpus",)  # a single name is a list of one
    assert step.outputs == ("tokens", "vocab")
    assert step.requirements == (step_dir / "requirements.txt").resolve()
    assert step.requirements_text == "numpy==1.26.4\n"
    assert step.retries == 2
    assert step.env == (("ALPHA", "x y"), ("ZETA", "1"))


def test_command_items_that_yaml_reads_as_numbers_become_strings(tmp_path: Path) -> None:
    write(tmp_path / "s" / "step.yaml", "name: s\ncommand: [sleep, 1.5, 2]\n")
    assert load_step(tmp_path / "s").command == ("sleep", "1.5", "2")


def test_steps_keep_file_order_when_it_is_already_topological(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, DIAMOND)
    assert [step.name for step in spec.steps] == ["gen", "square", "evens", "total", "final"]
    assert spec.topological_order() == ["gen", "square", "evens", "total", "final"]


def test_topological_order_puts_producers_first_whatever_the_file_order(tmp_path: Path) -> None:
    reordered = {name: DIAMOND[name] for name in ["final", "evens", "total", "gen", "square"]}
    spec = load_graph(tmp_path, reordered)
    order = spec.topological_order()
    assert sorted(order) == sorted(DIAMOND)
    assert (order[0], order[3], order[4]) == ("gen", "total", "final")
    position = {name: index for index, name in enumerate(order)}
    for step in spec.steps:
        for data in step.inputs:
            assert position[spec.producer_of()[data]] < position[step.name]


def test_producer_and_consumer_maps(tmp_path: Path) -> None:
    graph = {**DIAMOND, "gen": ([], ["numbers", "gen-log"])}
    spec = load_graph(tmp_path, graph)
    assert spec.producer_of() == {"numbers": "gen", "gen-log": "gen", "squares": "square", "evens": "evens",
                                  "total": "total", "final": "final"}
    assert spec.consumers_of() == {"numbers": ["square", "evens"], "gen-log": [], "squares": ["total"],
                                   "evens": ["total"], "total": ["final"], "final": []}
    assert spec.step("total").inputs == ("squares", "evens")
    with pytest.raises(KeyError):
        spec.step("absent")


def test_independent_steps_are_allowed(tmp_path: Path) -> None:
    spec = load_graph(tmp_path, {"a": ([], ["x"]), "b": ([], ["y"])})
    assert spec.topological_order() == ["a", "b"]
    assert spec.consumers_of() == {"x": [], "y": []}


def refusal(tmp_path: Path, graph: dict[str, tuple[list[str], list[str]]], **settings: Any) -> SpecError:
    path = write_graph(tmp_path, graph, **settings)
    with pytest.raises(SpecError) as raised:
        load_pipeline(path)
    assert raised.value.exit_code == EXIT_BAD_INPUT
    assert "\n" not in str(raised.value)
    return raised.value


def test_cycle_is_refused_naming_its_steps(tmp_path: Path) -> None:
    error = refusal(tmp_path, {"a": (["z"], ["x"]), "b": (["x"], ["y"]), "c": (["y"], ["z"])})
    assert error.file == str((tmp_path / "pipeline.yaml").resolve())
    assert error.field == "steps"
    assert "cycle" in error.problem
    assert "a -> c -> b -> a" in error.problem  # each step, then the producer of what it reads


def test_missing_producer_is_refused_at_the_consuming_step(tmp_path: Path) -> None:
    error = refusal(tmp_path, {"a": ([], ["x"]), "use": (["x", "never-made"], ["y"])})
    assert error.file == str((tmp_path / "steps" / "use" / "step.yaml").resolve())
    assert error.field == "inputs[1]"
    assert "'never-made'" in error.problem


def test_double_producer_is_refused_naming_both_steps(tmp_path: Path) -> None:
    error = refusal(tmp_path, {"a": ([], ["x"]), "b": ([], ["x"])})
    assert error.file == str((tmp_path / "steps" / "b" / "step.yaml").resolve())
    assert error.field == "outputs[0]"
    assert "'a'" in error.problem and "'b'" in error.problem


def test_step_reading_its_own_output_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, {"loop": (["x"], ["x"])})
    assert error.field == "inputs[0]"


def test_result_nobody_produces_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, DIAMOND, results=["final", "ghost"])
    assert error.field == "results[1]"
    assert "'ghost'" in error.problem


def test_major_checkpoint_nobody_produces_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, DIAMOND, checkpoint={"major": ["ghost"]})
    assert error.field == "checkpoint.major[0]"
