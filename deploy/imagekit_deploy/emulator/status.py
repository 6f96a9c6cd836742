"""What each emulated pod is doing: its containers, and the runtime's journal read from its shm.

The journal lives in the pod's /dev/shm, which belongs to the sandbox: it is read through
the sandbox, so it is there even while the pipeline container restarts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from imagekit_core import contract
from imagekit_runtime.data.results import read_completion
from imagekit_runtime.observe.journal import Entry, RunView, newest_run, parse_text
from imagekit_runtime.states import StepState

from ..in_container import READ_TEXT, reading
from ..rollout import PodUpdate, UpdateKind, template_revision
from .blueprint import PodBlueprint
from .pods import SANDBOX, PodSet
from .state import LABEL_REVISION, SetState

DONE_STATES = frozenset(state.value for state in StepState if state.done)


class Phase:
    MISSING = "Missing"        # no sandbox: the pod is gone
    PENDING = "Pending"        # sandbox up, pipeline container not (yet) created
    RUNNING = "Running"
    COMPLETE = "Complete"      # results delivered; the runtime holds until stopped
    RESTARTING = "Restarting"  # the engine restarts the container (CrashLoopBackOff on a kubelet)
    EXITED = "Exited"          # stopped and not restarted


class Update:
    """Where a pod is in the set's rolling update (`update` of its status)."""

    UPDATED = "Updated"                    # runs the set's current template
    OUTDATED = "Outdated"                  # runs an older template (held by partition, paused, or not reached yet)
    IN_PLACE = "InPlaceUpdating"           # new image swapped in; its runtime has not started yet
    RECREATING = "Recreating"              # deleted and made again; its runtime has not started yet


@dataclass
class PodStatus:
    pod: str
    ordinal: int
    shard_index: str
    shard_count: str
    phase: str
    container: str             # the engine's status of the pipeline container
    exit_code: int | None
    restarts: int              # by the restart policy, plus the container kills of `pod kill`
    complete: bool
    results: str | None        # host directory of this shard's results
    volumes: dict[str, str]    # volume -> host directory
    run: RunView
    image: str                 # the reference the pipeline container was made from
    image_id: str              # the engine's image id (sha256 of its config)
    digest: str | None         # repository@sha256:… in the registry, when the image was pushed or pulled
    revision: str              # the template revision the pod runs
    update_revision: str       # the set's current template revision
    update: str                # Update
    in_place_update_ready: bool | None  # the InPlaceUpdateReady condition (None: the template has no such gate)
    last_update: dict[str, Any] | None  # rollout.PodUpdate of the last update


def parse_journal(text: str) -> RunView:
    """The newest run in a journal's text (read out of the pod's shm)."""
    return newest_run(parse_text(text))


def read_journal(pods: PodSet, pod: PodBlueprint) -> list[Entry]:
    """Every entry of the pod's journal, read through the sandbox's /dev/shm (none when there is no sandbox)."""
    engine = pods.engine
    sandbox = engine.get(pods.container_name(pod.name, SANDBOX))
    if sandbox is None or sandbox.status != "running":
        return []
    code, text = engine.exec(sandbox, reading(READ_TEXT, f"{pod.run_dir()}/{contract.JOURNAL_FILE}"))
    return parse_text(text) if code == 0 else []


def read_run(pods: PodSet, pod: PodBlueprint) -> RunView:
    return newest_run(read_journal(pods, pod))


def pod_status(pods: PodSet, state: SetState, ordinal: int) -> PodStatus:
    pod = pods.blueprint(state, ordinal)
    engine = pods.engine
    sandbox = engine.state(pods.container_name(pod.name, SANDBOX))
    container = engine.state(pods.container_name(pod.name, pod.container.name))
    volumes = pods.volumes
    results_dir = pod.results_dir()
    results = volumes.host_path(pod, results_dir) if results_dir else None
    run = read_run(pods, pod) if sandbox.running else RunView()
    # A marker of another pipeline key (other params, another image) is an old run's.
    marker = read_completion(results / contract.COMPLETION_MARKER) if results is not None else None
    complete = marker is not None and run.key is not None and marker.get("key") == run.key
    if not sandbox.running:
        phase = Phase.MISSING
    elif container.status in ("missing", "created"):
        phase = Phase.PENDING
    elif container.status == "restarting":
        phase = Phase.RESTARTING
    elif container.running:
        phase = Phase.COMPLETE if complete else Phase.RUNNING
    else:
        phase = Phase.EXITED
    homes = {name: volumes.home(pod, volume) for name, volume in pod.volumes.items()}
    image, image_id, digest = engine.image_of(pods.container_name(pod.name, pod.container.name))
    revision = container.labels.get(LABEL_REVISION) or state.pod_revisions.get(pod.name, "")
    last = PodUpdate.from_json(state.updates.get(pod.name))
    update, ready = _update_state(state, revision, last, container.running, run)
    return PodStatus(
        pod=pod.name, ordinal=ordinal, shard_index=pod.shard_index, shard_count=pod.shard_count, phase=phase,
        container=container.status, exit_code=container.exit_code,
        restarts=container.restart_count + state.restarts.get(pod.name, 0), complete=complete,
        results=str(results) if results else None,
        volumes={name: str(home) for name, home in homes.items() if home is not None},
        run=run, image=image, image_id=image_id, digest=digest, revision=revision,
        update_revision=template_revision(state.workload), update=update,
        in_place_update_ready=ready if pod.in_place_gate else None,
        last_update=last.to_json() if last else None,
    )


def _update_state(state: SetState, revision: str, last: PodUpdate | None, running: bool,
                  run: RunView) -> tuple[str, bool]:
    """The pod's Update, and whether it is in-place-update ready: a pod updated in place is not until
    its new runtime has started a run (read live, so it holds even if `apply` was interrupted)."""
    pending = last is not None and last.ready_at is None and not (running and last.runtime_started(run))
    if pending and last is not None:
        in_place = last.kind == UpdateKind.IN_PLACE
        return (Update.IN_PLACE if in_place else Update.RECREATING), not in_place
    return (Update.UPDATED if revision == template_revision(state.workload) else Update.OUTDATED), True


def collect(pods: PodSet, state: SetState) -> list[PodStatus]:
    return [pod_status(pods, state, ordinal) for ordinal in state.ordinals]


def to_json(statuses: list[PodStatus]) -> list[dict[str, Any]]:
    return [asdict(status) for status in statuses]


def format_status(state: SetState, state_dir: str, statuses: list[PodStatus]) -> str:
    lines = [f"{state.name} (namespace {state.namespace}, {len(statuses)} pod(s), state {state_dir})",
             f"  {'POD':<24} {'SHARD':<7} {'PHASE':<11} {'RESTARTS':>8}  {'RUN':>3}  {'REVISION':<10} "
             f"{'UPDATE':<15} STEPS"]
    for status in statuses:
        done = sum(1 for s in status.run.steps.values() if s in DONE_STATES)
        running = [name for name, s in status.run.steps.items() if s in (StepState.RUNNING, StepState.COMMITTING)]
        if status.run.status == contract.RunStatus.ALREADY_COMPLETE:
            steps = "already complete"
        else:
            steps = f"{done}/{len(status.run.steps)} done" if status.run.steps else "-"
        if running:
            steps += f", running {', '.join(running)}"
        if status.phase in (Phase.EXITED, Phase.RESTARTING) and status.exit_code is not None:
            steps += f"; exit {status.exit_code}"
        shard = f"{status.shard_index}/{status.shard_count}"
        lines.append(f"  {status.pod:<24} {shard:<7} {status.phase:<11} {status.restarts:>8}  "
                     f"{status.run.runs:>3}  {status.revision:<10} {status.update:<15} {steps}")
        lines.append(f"  {'':<24} image {status.digest or status.image} ({status.image_id[:19]})")
    return "\n".join(lines)
