"""The step life cycle as an explicit state machine; every transition allowed is written here.

    WAITING ─► READY ─► RUNNING ─► COMMITTING ─► COMMITTED ─► RETIRED
       │  ▲      ▲         │                         └──► FAILED  (its outputs refused by the later,
       │  │      │         │                                       per-file check: data/vetting.py)
       │  └──────┴─BACKOFF◄┤ (exit ≠ 0, attempts left)
       │                   ├─► FAILED   (exit ≠ 0, no attempts left)
       │                   └─► STOPPED  (pipeline stopping: SIGTERM, another step failed)
       └─► WARM ─► RUNNING              (warm steps: the process waits at its gate until the inputs are
             └──► BACKOFF, FAILED, STOPPED   committed; it ended before, or the run stopped: not run)
    WAITING ─► REUSED ─► RETIRED        (outputs recovered from shm or a checkpoint)
"""
from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    WAITING = "waiting"        # some input not committed yet
    READY = "ready"            # all inputs committed, waiting for a parallelism slot
    WARM = "warm"              # process started, waiting at its gate for its inputs (or for a slot)
    RUNNING = "running"        # process started under supervisord
    BACKOFF = "backoff"        # failed, will be retried after a delay
    COMMITTING = "committing"  # exited 0, outputs being moved from staging to committed
    COMMITTED = "committed"    # outputs committed; consumers may read them
    REUSED = "reused"          # outputs recovered, step not run
    RETIRED = "retired"        # done, and every consumer of its outputs is done
    FAILED = "failed"          # no attempts left
    STOPPED = "stopped"        # stopped before it finished

    @property
    def done(self) -> bool:
        return self in (StepState.COMMITTED, StepState.REUSED, StepState.RETIRED)

    @property
    def final(self) -> bool:
        return self in (StepState.RETIRED, StepState.FAILED, StepState.STOPPED)


TRANSITIONS: dict[StepState, frozenset[StepState]] = {
    StepState.WAITING: frozenset({StepState.READY, StepState.WARM, StepState.REUSED, StepState.STOPPED}),
    StepState.READY: frozenset({StepState.RUNNING, StepState.STOPPED}),
    StepState.WARM: frozenset({StepState.RUNNING, StepState.BACKOFF, StepState.FAILED, StepState.STOPPED}),
    StepState.RUNNING: frozenset({StepState.COMMITTING, StepState.BACKOFF, StepState.FAILED, StepState.STOPPED}),
    StepState.BACKOFF: frozenset({StepState.READY, StepState.WAITING, StepState.STOPPED}),
    StepState.COMMITTING: frozenset({StepState.COMMITTED, StepState.BACKOFF, StepState.FAILED}),
    StepState.COMMITTED: frozenset({StepState.RETIRED, StepState.FAILED}),
    StepState.REUSED: frozenset({StepState.RETIRED}),
    StepState.RETIRED: frozenset(),
    StepState.FAILED: frozenset(),
    StepState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


def check_transition(step: str, current: StepState, new: StepState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"step {step}: {current.value} -> {new.value} is not allowed")
