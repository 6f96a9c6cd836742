"""The planner: what runs and what is reused, given where each output can be found now."""
from __future__ import annotations

from pathlib import Path

import pytest

from imagekit_core.spec import PipelineSpec
from imagekit_runtime.run.planner import Plan, make_plan, targets_of

from .graphs import DIAMOND, load_graph


@pytest.fixture
def diamond(tmp_path: Path) -> PipelineSpec:
    return load_graph(tmp_path, DIAMOND, results=["final"])


class World:
    """Where each data item is (None: nowhere), which results are delivered, and what the planner asked."""

    def __init__(self, where: dict[str, str | None] | None = None, delivered: set[str] | None = None,
                 recorded: set[str] | None = None) -> None:
        self.where = where or {}
        self.delivered_results = delivered or set()
        self.recorded = recorded or set()
        self.located: list[tuple[str, str]] = []

    def locate(self, step: str, data: str) -> str | None:
        self.located.append((step, data))
        return self.where.get(data)

    def delivered(self, data: str) -> bool:
        return data in self.delivered_results

    def step_recorded(self, step: str) -> bool:
        return step in self.recorded

    def plan(self, spec: PipelineSpec) -> Plan:
        return make_plan(spec, self.locate, self.delivered, self.step_recorded)


def everywhere(source: str) -> dict[str, str | None]:
    return {data: source for _inputs, outputs in DIAMOND.values() for data in outputs}


def test_nothing_available_runs_every_step_in_topological_order(diamond: PipelineSpec) -> None:
    plan = World().plan(diamond)
    assert plan.to_run == ["gen", "square", "evens", "total", "final"]
    assert plan.reused == []
    assert plan.restore == {}
    assert plan.targets == ["final"]


def test_result_in_shm_runs_nothing_and_looks_no_further(diamond: PipelineSpec) -> None:
    world = World(everywhere("shm"))
    plan = world.plan(diamond)
    assert plan.to_run == []
    assert plan.reused == ["gen", "square", "evens", "total", "final"]
    assert plan.restore == {}
    assert world.located == [("final", "final")]  # intermediates are not even looked for
    assert plan.available == {("final", "final"): "shm"}


def test_delivered_result_needs_nothing_at_all(diamond: PipelineSpec) -> None:
    world = World(delivered={"final"})
    plan = world.plan(diamond)
    assert plan.to_run == []
    assert world.located == []
    assert plan.restore == {}


def test_checkpointed_result_is_restored_not_rerun(diamond: PipelineSpec) -> None:
    plan = World({"final": "pv"}).plan(diamond)
    assert plan.to_run == []
    assert plan.restore == {("final", "final"): "pv"}


def test_lost_result_reruns_only_the_last_step_from_a_checkpointed_input(diamond: PipelineSpec) -> None:
    plan = World({"total": "ssd", "numbers": "shm"}).plan(diamond)
    assert plan.to_run == ["final"]
    assert plan.reused == ["gen", "square", "evens", "total"]
    assert plan.restore == {("total", "total"): "ssd"}


def test_a_missing_branch_reruns_down_to_what_is_available(diamond: PipelineSpec) -> None:
    # squares is gone, evens is still in shm, numbers only on the PV.
    plan = World({"numbers": "pv", "evens": "shm"}).plan(diamond)
    assert plan.to_run == ["square", "total", "final"]
    assert plan.reused == ["gen", "evens"]
    assert plan.restore == {("gen", "numbers"): "pv"}  # evens is read where it is, in shm
    assert plan.available[("evens", "evens")] == "shm"
    assert plan.available[("square", "squares")] is None


def test_an_input_found_on_ssd_is_restored_for_the_steps_that_rerun(diamond: PipelineSpec) -> None:
    plan = World({"numbers": "ssd"}).plan(diamond)
    assert plan.to_run == ["square", "evens", "total", "final"]
    assert plan.restore == {("gen", "numbers"): "ssd"}


def test_targets_are_results_then_outputs_nobody_reads(tmp_path: Path) -> None:
    graph = {**DIAMOND, "gen": ([], ["numbers", "gen-log"]), "stats": (["numbers"], ["stats"])}
    spec = load_graph(tmp_path, graph, results=["total"])
    assert targets_of(spec) == ["total", "gen-log", "final", "stats"]


def test_unread_side_output_alone_makes_its_step_run(tmp_path: Path) -> None:
    graph = {**DIAMOND, "gen": ([], ["numbers", "gen-log"])}
    spec = load_graph(tmp_path, graph, results=["final"])
    plan = World({"final": "shm", "numbers": "shm"}).plan(spec)
    assert plan.to_run == ["gen"]
    assert plan.reused == ["square", "evens", "total", "final"]


def test_step_without_outputs_runs_until_it_is_recorded(tmp_path: Path) -> None:
    graph = {**DIAMOND, "notify": (["final"], [])}
    spec = load_graph(tmp_path, graph)
    found: dict[str, str | None] = {"final": "shm"}
    assert World(found).plan(spec).to_run == ["notify"]
    assert World(found, recorded={"notify"}).plan(spec).to_run == []
    # once recorded, its inputs are not needed: a lost `final` is not made again for it
    assert World({"total": "shm"}, recorded={"notify"}).plan(spec).to_run == []
    # not recorded and its input lost: the producer runs first
    assert World({"total": "shm"}).plan(spec).to_run == ["final", "notify"]


@pytest.mark.parametrize(("lost", "expected"), [
    ("numbers", []),  # nobody needs it: its consumers' outputs are there
    ("squares", []),
    ("final", ["final"]),
])
def test_only_needed_losses_matter(diamond: PipelineSpec, lost: str, expected: list[str]) -> None:
    where = everywhere("ssd")
    where[lost] = None
    assert World(where).plan(diamond).to_run == expected


def test_a_producer_that_reruns_is_not_restored(tmp_path: Path) -> None:
    # gen must run again for its lost side output; its numbers on the SSD are then made anew, not restored.
    spec = load_graph(tmp_path, {**DIAMOND, "gen": ([], ["numbers", "gen-log"])}, results=["final"])
    plan = World({"numbers": "ssd", "evens": "shm"}).plan(spec)
    assert plan.to_run == ["gen", "square", "total", "final"]
    assert plan.available[("gen", "numbers")] == "ssd"
    assert plan.restore == {}


def test_plan_is_a_function_of_availability(diamond: PipelineSpec) -> None:
    def locate(step: str, data: str) -> str | None:
        return None if data == "final" else "shm"

    first = make_plan(diamond, locate, lambda data: False, lambda step: False)
    second = make_plan(diamond, locate, lambda data: False, lambda step: False)
    assert first == second
    assert first.to_run == ["final"]


def test_each_input_of_a_step_that_runs_says_where_it_comes_from(diamond: PipelineSpec) -> None:
    # squares kept in shm, evens only on the SSD, total nowhere: total and final run again.
    world = World({"numbers": "shm", "squares": "shm", "evens": "ssd"})
    plan = world.plan(diamond)
    assert plan.to_run == ["total", "final"]
    assert plan.inputs == {"total": {"squares": "shm", "evens": "ssd"}, "final": {"total": "run"}}
    assert World().plan(diamond).inputs["square"] == {"numbers": "run"}  # nothing kept: all made in this run
