"""`imagekit deploy status|wait NAME`: each shard as the cluster alone shows it.

The set and its pods come from the API; what a shard's runtime has done comes from the pod itself, read
through the API's exec: its journal in shm (steps done, the one running) and the completion marker in its
results directory, as `imagekit pod status` reads them from a local pod.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from imagekit_core import contract
from imagekit_core.errors import EXIT_FAILURE, PipelineFailed, UsageError
from imagekit_runtime.observe.journal import RunView, newest_run, parse_text
from imagekit_runtime.states import StepState

from ..emulator.blueprint import pod_blueprint
from ..rollout import template_revision
from .client import Cluster

WORKLOAD_VERSIONS = ("apps.kruise.io/v1beta1", "apps/v1")
COMPLETE_LABEL = "imagekit.dev/shard-complete"  # set on a pod by `deploy status|wait` once they see it complete
PIPELINE_CONTAINER = "pipeline"
DONE = frozenset(state.value for state in StepState if state.done)


class Phase:
    PENDING = "Pending"      # not scheduled, or its containers not started
    RUNNING = "Running"
    COMPLETE = "Complete"    # results delivered; the runtime holds until stopped
    FAILING = "Failing"      # the pipeline container exited with a step failure and is being restarted
    MISSING = "Missing"      # no pod for this ordinal now


@dataclass
class ShardStatus:
    shard: int
    pod: str
    node: str
    phase: str
    done: int
    total: int
    running: list[str]
    failed: list[str]
    restarts: int
    image: str
    image_id: str
    revision: str
    uid: str
    updated: bool   # runs the set's current revision, its container already on the template's image
    run: dict[str, Any] = field(default_factory=dict)


@dataclass
class SetStatus:
    name: str
    namespace: str
    api_version: str
    replicas: int
    update_revision: str
    shards: list[ShardStatus]
    observed: bool = True  # the controller has seen the set's newest spec (its revision is the current one)

    @property
    def complete(self) -> bool:
        return self.observed and bool(self.shards) and all(shard.phase == Phase.COMPLETE and shard.updated for shard in self.shards)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_workload(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    for api_version in WORKLOAD_VERSIONS:
        try:
            found = cluster.get(api_version, "StatefulSet", name, namespace)
        except UsageError:  # the cluster has no such API (no Kruise): try the next
            continue
        if found is not None:
            return found
    raise UsageError(f"no StatefulSet {name} in namespace {namespace} (fix: `imagekit deploy apply DIR` first, "
                     "or pass -n NAMESPACE)")


def _pipeline_container(pod: Any) -> Any:
    for container in pod.status.container_statuses or []:
        if container.name == PIPELINE_CONTAINER:
            return container
    return None


def _run_of(cluster: Cluster, pod: Any, workload: dict[str, Any], name: str) -> tuple[RunView, bool]:
    """The pod's newest run (from its journal) and whether its results carry the completion marker of that run."""
    ordinal = int(pod.metadata.name.rsplit("-", 1)[1])
    blueprint = pod_blueprint(workload, name, pod.metadata.namespace, ordinal)
    text = cluster.read_text(pod.metadata.name, pod.metadata.namespace, PIPELINE_CONTAINER,
                             f"{blueprint.run_dir()}/{contract.JOURNAL_FILE}")
    run = newest_run(parse_text(text)) if text else RunView()
    results = blueprint.results_dir()
    marker_text = cluster.read_text(pod.metadata.name, pod.metadata.namespace, PIPELINE_CONTAINER,
                                    f"{results}/{contract.COMPLETION_MARKER}") if results else None
    try:
        marker = json.loads(marker_text) if marker_text else None
    except ValueError:
        marker = None
    complete = isinstance(marker, dict) and run.key is not None and marker.get("key") == run.key
    return run, complete


def _runs_template_image(pod: Any, container: Any) -> bool:
    """Whether the container runs the image its pod spec names now (an in-place update swaps it)."""
    wanted = next((c.image for c in pod.spec.containers if c.name == PIPELINE_CONTAINER), "")
    if container is None or container.state is None or container.state.running is None:
        return False
    if "@" in wanted:
        return str(container.image_id or "").endswith(wanted.split("@", 1)[1])
    return bool(container.image == wanted)


def shard_status(cluster: Cluster, pod: Any, workload: dict[str, Any], name: str, update_revision: str) -> ShardStatus:
    container = _pipeline_container(pod)
    running_now = container is not None and container.state is not None and container.state.running is not None
    run, complete = _run_of(cluster, pod, workload, name) if running_now else (RunView(), False)
    last = container.last_state.terminated if container is not None and container.last_state else None
    waiting = container.state.waiting if container is not None and container.state else None
    if complete:
        phase = Phase.COMPLETE
    elif last is not None and last.exit_code == EXIT_FAILURE and (waiting is not None or not running_now
                                                                   or run.status is not None):
        phase = Phase.FAILING
    elif running_now:
        phase = Phase.RUNNING
    else:
        phase = Phase.PENDING
    failed = [step for step, state in run.steps.items() if state == StepState.FAILED]
    labels = pod.metadata.labels or {}
    return ShardStatus(
        shard=int(pod.metadata.name.rsplit("-", 1)[1]), pod=pod.metadata.name, node=pod.spec.node_name or "-",
        phase=phase, done=sum(1 for state in run.steps.values() if state in DONE), total=len(run.steps),
        running=[step for step, state in run.steps.items() if state in (StepState.RUNNING, StepState.COMMITTING)],
        failed=failed, restarts=container.restart_count if container is not None else 0,
        image=container.image if container is not None else "", image_id=container.image_id if container else "",
        revision=labels.get("controller-revision-hash", ""), uid=pod.metadata.uid,
        updated=labels.get("controller-revision-hash", "") == update_revision and _runs_template_image(pod, container),
        run={"runs": run.runs, "status": run.status, "restored": run.restored, "reused": run.reused,
             "started": run.started, "inputs": run.inputs, "steps": run.steps, "checkpoints": run.checkpointed})


def set_pods(cluster: Cluster, workload: dict[str, Any], namespace: str) -> list[Any]:
    """The set's pods now (its selector's), leaving out those being deleted."""
    selector = ",".join(f"{key}={value}" for key, value in
                        (((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).items())
    return [pod for pod in cluster.pods(namespace, selector) if pod.metadata.deletion_timestamp is None]


def set_status(cluster: Cluster, name: str, namespace: str) -> SetStatus:
    workload = find_workload(cluster, name, namespace)
    pods = set_pods(cluster, workload, namespace)
    status = workload.get("status") or {}
    update_revision = str(status.get("updateRevision") or template_revision(workload))
    shards = sorted((shard_status(cluster, pod, workload, name, update_revision) for pod in pods),
                    key=lambda shard: shard.shard)
    result = SetStatus(name=name, namespace=namespace, api_version=str(workload.get("apiVersion")),
                       replicas=int((workload.get("spec") or {}).get("replicas") or 0),
                       update_revision=update_revision, shards=shards,
                       observed=status.get("observedGeneration") == (workload.get("metadata") or {}).get("generation"))
    mark_complete(cluster, result, {pod.metadata.name: pod for pod in pods})
    return result


def mark_complete(cluster: Cluster, status: SetStatus, pods: dict[str, Any]) -> None:
    """Label each pod with whether its shard is complete, so `kubectl get pods -L imagekit.dev/shard-complete`
    shows it too (the pods themselves have no API access to say so)."""
    for shard in status.shards:
        value = "true" if shard.phase == Phase.COMPLETE and shard.updated else "false"
        pod = pods.get(shard.pod)
        if pod is not None and (pod.metadata.labels or {}).get(COMPLETE_LABEL) != value:
            cluster.core.patch_namespaced_pod(shard.pod, status.namespace, {"metadata": {"labels": {COMPLETE_LABEL: value}}})


def format_status(status: SetStatus) -> str:
    lines = [f"{status.name} ({status.api_version}, namespace {status.namespace}, {len(status.shards)}/"
             f"{status.replicas} pod(s), revision {status.update_revision})",
             f"  {'SHARD':<5} {'POD':<24} {'NODE':<18} {'PHASE':<9} {'STEPS':<7} {'CURRENT':<16} {'RESTARTS':>8}  "
             f"{'REVISION':<24} IMAGE"]
    for shard in status.shards:
        current = ",".join(shard.running or shard.failed) or "-"
        lines.append(f"  {shard.shard:<5} {shard.pod:<24} {shard.node:<18} {shard.phase:<9} "
                     f"{shard.done}/{shard.total:<5} {current:<16} {shard.restarts:>8}  {shard.revision:<24} "
                     f"{shard.image_id or shard.image}")
    return "\n".join(lines)


def wait_complete(cluster: Cluster, name: str, namespace: str, timeout: float, interval: float = 2.0) -> SetStatus:
    """Until every shard is complete (the set's replicas, each with its results delivered); PipelineFailed naming the
    shard and step when one fails, or when the timeout passes first."""
    deadline = time.monotonic() + timeout
    while True:
        status = set_status(cluster, name, namespace)
        for shard in status.shards:
            if shard.phase == Phase.FAILING:
                steps = ", ".join(shard.failed) or "the runtime"
                raise PipelineFailed(f"{name}: shard {shard.shard} (pod {shard.pod}) failed in step {steps} "
                                     f"(fix: see `imagekit deploy logs {name} --shard {shard.shard}`)")
        if status.complete and len(status.shards) >= status.replicas:
            return status
        if time.monotonic() >= deadline:
            pending = [f"{shard.shard} {shard.phase} {shard.done}/{shard.total}" for shard in status.shards
                       if shard.phase != Phase.COMPLETE]
            raise PipelineFailed(f"{name}: not complete within {timeout:g}s (shards {', '.join(pending) or 'none up'})")
        time.sleep(interval)
