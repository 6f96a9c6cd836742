"""`imagekit deploy logs|results|delete NAME`: a deployed set's logs and results, through the API, and its removal."""
from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagekit_core import contract
from imagekit_core.errors import UsageError

from ..emulator.blueprint import pod_blueprint, pod_name
from .client import Cluster, ClusterError, api_message
from .shards import PIPELINE_CONTAINER, find_workload, set_pods


def _pod(cluster: Cluster, workload: dict[str, Any], name: str, namespace: str, shard: int) -> Any:
    wanted = pod_name(name, shard)
    names = [pod.metadata.name for pod in set_pods(cluster, workload, namespace)]
    if wanted not in names:
        raise UsageError(f"{name} has no pod for shard {shard} now (fix: one of "
                         f"{', '.join(n.rsplit('-', 1)[1] for n in sorted(names)) or 'none: is it applied?'})")
    return pod_blueprint(workload, name, namespace, shard)


def shard_logs(cluster: Cluster, name: str, namespace: str, shard: int, step: str | None,
               follow: bool = False) -> Iterator[str]:
    """The pipeline container's log (the runtime and every step), or one step's log from the run directory."""
    workload = find_workload(cluster, name, namespace)
    pod = _pod(cluster, workload, name, namespace, shard)
    if step is None:
        yield from cluster.logs(pod.name, namespace, PIPELINE_CONTAINER, follow=follow)
        return
    text = cluster.read_text(pod.name, namespace, PIPELINE_CONTAINER, f"{pod.run_dir()}/{contract.LOGS_DIR}/{step}.log")
    if text is None:
        raise UsageError(f"no log of step {step!r} in pod {pod.name} (fix: a step of the pipeline that has started)")
    yield text


def copy_results(cluster: Cluster, name: str, namespace: str, destination: Path) -> list[Path]:
    """Each shard's results directory (on its PV claim), read through its pod, into destination/<shard>/."""
    workload = find_workload(cluster, name, namespace)
    copied = []
    for ordinal in sorted(int(found.metadata.name.rsplit("-", 1)[1]) for found in set_pods(cluster, workload, namespace)):
        pod = pod_blueprint(workload, name, namespace, ordinal)
        results = pod.results_dir()
        if results is None:
            raise UsageError(f"{name} keeps no results directory (fix: render with a PV, checkpoint.pv)")
        data = cluster.read_file_base64(pod.name, namespace, PIPELINE_CONTAINER, results)
        if data is None:
            raise ClusterError(f"pod {pod.name}: could not read {results} (is its pipeline container running?)")
        target = destination / str(ordinal)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(target, filter="data")  # no links out, no devices, no absolute paths
        copied.append(target)
    return copied


def delete_set(cluster: Cluster, name: str, namespace: str, delete_data: bool) -> list[str]:
    """The set and its Service; with delete_data its claims (PV, local SSD) too. What was deleted."""
    from kubernetes.client.rest import ApiException

    workload = find_workload(cluster, name, namespace)
    deleted = []
    for api_version, kind in ((str(workload["apiVersion"]), "StatefulSet"), ("v1", "Service")):
        try:
            cluster.resource(api_version, kind).delete(name=name, namespace=namespace,
                                                       body={"propagationPolicy": "Foreground"})
            deleted.append(f"{kind.lower()}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise ClusterError(f"delete {kind} {name}: {exc.status} {api_message(exc)}") from None
    if delete_data:
        for template in (workload.get("spec") or {}).get("volumeClaimTemplates") or []:
            prefix = f"{template['metadata']['name']}-{name}-"
            for claim in cluster.core.list_namespaced_persistent_volume_claim(namespace).items:
                if claim.metadata.name.startswith(prefix) and claim.metadata.name[len(prefix):].isdigit():
                    cluster.core.delete_namespaced_persistent_volume_claim(claim.metadata.name, namespace)
                    deleted.append(f"persistentvolumeclaim/{claim.metadata.name}")
    return deleted
