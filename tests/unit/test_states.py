"""The step state machine: every allowed transition passes, the forbidden ones raise, final states are final."""
from __future__ import annotations

import pytest

from imagekit_runtime.states import TRANSITIONS, IllegalTransition, StepState, check_transition

S = StepState

ALLOWED = [
    (S.WAITING, S.READY), (S.WAITING, S.WARM), (S.WAITING, S.REUSED), (S.WAITING, S.STOPPED),
    (S.READY, S.RUNNING), (S.READY, S.STOPPED),
    (S.WARM, S.RUNNING), (S.WARM, S.BACKOFF), (S.WARM, S.FAILED), (S.WARM, S.STOPPED),
    (S.RUNNING, S.COMMITTING), (S.RUNNING, S.BACKOFF), (S.RUNNING, S.FAILED), (S.RUNNING, S.STOPPED),
    (S.BACKOFF, S.READY), (S.BACKOFF, S.WAITING), (S.BACKOFF, S.STOPPED),
    (S.COMMITTING, S.COMMITTED), (S.COMMITTING, S.BACKOFF), (S.COMMITTING, S.FAILED),
    (S.COMMITTED, S.RETIRED), (S.COMMITTED, S.FAILED),  # refused by the per-file check after the commit
    (S.REUSED, S.RETIRED),
]

FORBIDDEN = [
    (S.WAITING, S.RUNNING),       # must wait for a slot first
    (S.WAITING, S.COMMITTED),
    (S.READY, S.COMMITTING),      # never ran
    (S.READY, S.REUSED),
    (S.RUNNING, S.COMMITTED),     # a commit goes through COMMITTING
    (S.RUNNING, S.READY),         # a retry goes through BACKOFF
    (S.BACKOFF, S.RUNNING),
    (S.WARM, S.COMMITTING),       # a warm step commits only after its gate opened (RUNNING)
    (S.WARM, S.READY),
    (S.COMMITTING, S.STOPPED),    # a commit is finished, not interrupted
    (S.COMMITTED, S.STOPPED),
    (S.REUSED, S.RUNNING),
    (S.FAILED, S.READY),          # a failed step is not revived within a run
    (S.STOPPED, S.RUNNING),
    (S.RETIRED, S.WAITING),
]


def test_the_table_is_exactly_the_documented_transitions() -> None:
    table = {(current, new) for current, targets in TRANSITIONS.items() for new in targets}
    assert table == set(ALLOWED)
    assert set(TRANSITIONS) == set(StepState)


@pytest.mark.parametrize(("current", "new"), ALLOWED, ids=lambda s: s.value)
def test_allowed_transition_is_accepted(current: StepState, new: StepState) -> None:
    check_transition("tokenize", current, new)


@pytest.mark.parametrize(("current", "new"), FORBIDDEN, ids=lambda s: s.value)
def test_forbidden_transition_is_refused_naming_the_step(current: StepState, new: StepState) -> None:
    with pytest.raises(IllegalTransition) as raised:
        check_transition("tokenize", current, new)
    assert str(raised.value) == f"step tokenize: {current.value} -> {new.value} is not allowed"


@pytest.mark.parametrize("state", list(StepState), ids=lambda s: s.value)
def test_no_state_goes_back_to_itself(state: StepState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition("count", state, state)


def test_final_states_have_no_way_out() -> None:
    final = {state for state in StepState if state.final}
    assert final == {S.RETIRED, S.FAILED, S.STOPPED}
    for state in final:
        assert TRANSITIONS[state] == frozenset()
    for state in set(StepState) - final:
        assert TRANSITIONS[state], f"{state.value} is not final but has no way out"


def test_done_means_outputs_are_there() -> None:
    assert {state for state in StepState if state.done} == {S.COMMITTED, S.REUSED, S.RETIRED}


def test_every_state_can_reach_a_final_state() -> None:
    for start in StepState:
        seen, frontier = {start}, [start]
        while frontier:
            for new in TRANSITIONS[frontier.pop()]:
                if new not in seen:
                    seen.add(new)
                    frontier.append(new)
        assert any(state.final for state in seen), start


def test_states_are_spelled_as_in_the_journal() -> None:
    assert [state.value for state in StepState] == [
        "waiting", "ready", "warm", "running", "backoff", "committing", "committed", "reused", "retired", "failed",
        "stopped",
    ]
