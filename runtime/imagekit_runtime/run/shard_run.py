"""One run of a shard, around the conductor: what it finds first, and what it checks and marks last.

Journal the run's start; stop at once when the shard is already complete; otherwise recover (the plan from
what survived), start the step host, let the conductor run the steps, wait for the copies out of shm, check
that no committed data changed (data/seal.py), mark the shard complete when every result was delivered, and
journal the run's end. The conductor is closed whatever happens.
"""
from __future__ import annotations

import logging
import time

from imagekit_core.contract import Event, RunStatus
from imagekit_core.errors import EXIT_ENVIRONMENT, EXIT_FAILURE, EXIT_OK

from ..keys import pipeline_key
from ..states import StepState
from ..supervise.step_program import RunContext, step_program
from . import shard_state
from .conductor import Conductor
from .signals import install_signal_handlers, restore_signal_handlers
from .summary import RunSummary

log = logging.getLogger("imagekit.runtime")


def run_shard(conductor: Conductor) -> RunSummary:
    """The run, start to end; its summary (the exit code is in it)."""
    started = time.monotonic()
    spec, options = conductor.spec, conductor.options
    conductor.journal.record(Event.RUN_START, pipeline=spec.name, shard=options.shard_index,
                             shard_count=options.shard_count, key=pipeline_key(conductor.keys))
    previous_handlers = install_signal_handlers(conductor.stop_requested)
    try:
        if _already_complete(conductor):
            return _summary(conductor, EXIT_OK, RunStatus.ALREADY_COMPLETE, started)
        if options.flags.force:
            shard_state.forget_everything(spec, conductor.layout, conductor.store)
        _plan(conductor)
        _start(conductor)
        exit_code, status = conductor.loop()
        conductor.drain_copies()
        exit_code, status = _check_seals(conductor, exit_code, status)
        if exit_code == EXIT_OK and not _complete(conductor):
            exit_code, status = EXIT_ENVIRONMENT, RunStatus.FAILED  # computed, but not every result delivered
        if exit_code == EXIT_OK and options.hold:
            conductor.outputs.release_checkpointed()
        return _summary(conductor, exit_code, status, started)
    finally:
        conductor.close()
        restore_signal_handlers(previous_handlers)


def _plan(conductor: Conductor) -> None:
    """Plan from what survived: shm first, then SSD, then PV; restore into shm what must come back."""
    spec, options = conductor.spec, conductor.options
    plan = shard_state.plan_recovery(spec, conductor.layout, conductor.keys, conductor.store, conductor.checkpoints,
                                     force=options.flags.force)
    conductor.journal.record(Event.PLAN, **shard_state.plan_fields(plan))
    shard_state.note_inputs(plan, conductor.steps)
    shard_state.bring_back(plan, conductor.keys, conductor.store, conductor.checkpoints, conductor.run_id)
    conductor.adopt(plan)
    if plan.to_run:
        log.info("%s shard %d: running %s; reusing %s", spec.name, options.shard_index, ", ".join(plan.to_run),
                 ", ".join(plan.reused) or "nothing")


def _start(conductor: Conductor) -> None:
    """The step host starts, knowing the programs of the steps to run."""
    spec, options, layout = conductor.spec, conductor.options, conductor.layout
    context = RunContext(layout=layout, params=conductor.params, shard_index=options.shard_index,
                         shard_count=options.shard_count, producers=conductor.producers,
                         runtime_path=layout.helper_path, grace_seconds=spec.grace_seconds)
    conductor.host.start([step_program(step, context, conductor.environments.paths_for(step))
                          for step in map(spec.step, conductor.to_run)])


def _already_complete(conductor: Conductor) -> bool:
    options, layout = conductor.options, conductor.layout
    if options.flags.force or not shard_state.already_complete(layout, conductor.keys):
        return False
    log.info("shard %d of %s is already complete (%s); nothing to do — use --force to run again",
             options.shard_index, conductor.spec.name, layout.completion_marker)
    for step in conductor.steps.values():
        step.state = StepState.REUSED  # outputs delivered; nothing to journal
    return True


def _check_seals(conductor: Conductor, exit_code: int, status: RunStatus) -> tuple[int, RunStatus]:
    """Committed data changed after its commit (a copy refused it, or it is not as sealed now) fails a run
    that would have succeeded, with the first such change as its one line (data/seal.py)."""
    changed = conductor.copier.tampered + conductor.outputs.changed_since_commit()
    foreign = conductor.journal.check()
    if foreign is not None:
        changed.append(foreign)
    for line in changed:
        log.error("error: %s", line)
    if not changed:
        return exit_code, status
    if exit_code == EXIT_OK:
        conductor.stop_reason = changed[0]
        return EXIT_FAILURE, RunStatus.FAILED
    conductor.warnings.extend(changed)
    return exit_code, status


def _complete(conductor: Conductor) -> bool:
    """Mark the shard complete; False (nothing marked) when a result was not delivered."""
    options, layout = conductor.options, conductor.layout
    missing = shard_state.mark_complete(conductor.spec, layout, conductor.keys, conductor.checkpoints,
                                        run_id=conductor.run_id, shard_index=options.shard_index,
                                        shard_count=options.shard_count)
    if missing:
        log.error("error: results not delivered to %s: %s (fix: free space there, or pass --results DIR)",
                  layout.results_dir, ", ".join(missing))
        conductor.warnings.append(f"results not delivered: {', '.join(missing)}")
    return not missing


def _summary(conductor: Conductor, exit_code: int, status: RunStatus, started: float) -> RunSummary:
    conductor.journal.record(Event.RUN_END, status=status.value, exit_code=exit_code,
                             peak_shm_bytes=conductor.commits.peak_bytes)
    options = conductor.options
    return RunSummary(
        pipeline=conductor.spec.name, run_id=conductor.run_id, shard_index=options.shard_index,
        shard_count=options.shard_count, exit_code=exit_code, status=status,
        wall_seconds=time.monotonic() - started, peak_shm_bytes=conductor.commits.peak_bytes,
        steps=[conductor.steps[name] for name in conductor.spec.topological_order()],
        results_dir=str(conductor.layout.results_dir), message=conductor.stop_reason or "",
        warnings=conductor.warnings + conductor.copier.errors,
    )
