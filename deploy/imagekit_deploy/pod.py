"""The pod both flavors run: one pipeline container, its volumes and its claims.

Mounts in the pipeline container, and what survives which failure (docs/contract.md):
  /dev/shm          emptyDir medium Memory, sizeLimit = shm: survives a container restart
  /tmp              emptyDir on disk: scratch, since the root filesystem is read-only
  checkpoint.ssd    hostPath (per pod sub-directory) or a local-PV claim: survives the pod
  checkpoint.pv     volumeClaimTemplate, retained: survives the node
The shard index comes from the ordinal label through the downward API; the pod
name is passed too, so the runtime can fall back to its trailing `-N`. S3 settings come as plain env
(--env AWS_ENDPOINT_URL=…), the credentials from a Secret through envFrom (--s3-secret). The runtime serves
metrics and health on the `metrics` port, which the probes ask (monitoring.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagekit_core import contract
from imagekit_core.labels import POD_PIPELINE_LABEL
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.quantity import format_bytes, format_cpus

from .monitoring import SCRAPE_ANNOTATIONS, metrics_args, metrics_port, probes
from .settings import RUN_AS_USER, SHM_MOUNT, TMP_MOUNT, DeploySettings, SsdMode

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
CONTAINER_NAME = "pipeline"
SSD_INIT_CONTAINER_NAME = "prepare-ssd"
SHM_DIR = contract.DEFAULT_SHM_DIR
TMP_SIZE = "1Gi"
IN_PLACE_READINESS_GATE = "InPlaceUpdateReady"
LOCAL_PROVISIONER = "kubernetes.io/no-provisioner"

# Volume and claim names; a claim's PVC is `<claim>-<statefulset>-<ordinal>`.
SHM_VOLUME = "shm"
TMP_VOLUME = "tmp"
SSD_VOLUME = "ssd"
PV_VOLUME = "pv"
SSD_ROOT_IN_INIT = "/ssd-root"
# hostPath is shared by every pod on the node: each pod gets its own sub-directory.
SSD_SUBPATH = f"$({contract.POD_NAMESPACE})/$({contract.POD_NAME})"


@dataclass(frozen=True)
class PodPlan:
    """The pod template and what it needs around it, shared by the flavors."""

    template: dict[str, Any]
    claim_templates: list[dict[str, Any]] = field(default_factory=list)
    storage_classes: list[dict[str, Any]] = field(default_factory=list)


def selector_labels(settings: DeploySettings) -> dict[str, str]:
    return {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/part-of": "imagekit"}


def common_labels(spec: PipelineSpec, settings: DeploySettings) -> dict[str, str]:
    return {**selector_labels(settings), "app.kubernetes.io/managed-by": "imagekit", POD_PIPELINE_LABEL: spec.name}


def metadata(name: str, spec: PipelineSpec, settings: DeploySettings, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced and settings.namespace:
        meta["namespace"] = settings.namespace
    meta["labels"] = common_labels(spec, settings)
    return meta


def _field_env(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _identity_env() -> list[dict[str, Any]]:
    return [
        _field_env(contract.POD_NAME, "metadata.name"),
        _field_env(contract.POD_NAMESPACE, "metadata.namespace"),
    ]


def shard_env(spec: PipelineSpec, settings: DeploySettings) -> list[dict[str, Any]]:
    """The runtime's environment contract. An absent ordinal label yields "", and the runtime
    then reads the shard from the pod name."""
    env = [
        _field_env(contract.SHARD_INDEX, f"metadata.labels['{POD_INDEX_LABEL}']"),
        {"name": contract.SHARD_COUNT, "value": str(settings.shard_count)},
        *_identity_env(),
        {"name": contract.SHM_DIR, "value": SHM_DIR},
        # A StatefulSet restarts a container that exits, even with 0: a complete shard waits instead.
        {"name": contract.HOLD_WHEN_COMPLETE, "value": "1"},
    ]
    if spec.checkpoint.ssd is not None:
        env.append({"name": contract.SSD_DIR, "value": str(spec.checkpoint.ssd)})
    if spec.checkpoint.pv is not None:
        env.append({"name": contract.PV_DIR, "value": str(spec.checkpoint.pv)})
    if settings.cpus is not None:  # the cgroup's cpu.max says the same where the runtime can read it
        env.append({"name": contract.CPUS, "value": format_cpus(settings.cpus)})
    return env


def run_env(settings: DeploySettings) -> list[dict[str, str]]:
    """--run: the job's run name, the same in every pod and every restart ({run} in source and sink URLs)."""
    return [] if settings.run_name is None else [{"name": contract.RUN_NAME, "value": settings.run_name}]


def secret_env(settings: DeploySettings) -> dict[str, Any]:
    """--s3-secret: every key of the Secret becomes a variable of the pipeline container (AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, …), so the credentials stay in the Secret: never in the manifest or the image."""
    if settings.s3_secret is None:
        return {}
    return {"envFrom": [{"secretRef": {"name": settings.s3_secret}}]}


def _restricted_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
    }


def _ssd_init_container(settings: DeploySettings) -> dict[str, Any]:
    """hostPath directories belong to root and fsGroup does not apply to them, so a
    short-lived container with CAP_CHOWN alone hands the pod's sub-directory to uid 10001."""
    script = (
        # The mode is set at creation: after the chown, chmod would need CAP_FOWNER, which it lacks.
        "import os, sys; d = sys.argv[1]; os.makedirs(d, mode=0o700, exist_ok=True); "
        f"os.chown(d, {RUN_AS_USER}, {RUN_AS_USER})"
    )
    return {
        "name": SSD_INIT_CONTAINER_NAME,
        "image": settings.image,
        "command": ["python3", "-c", script, f"{SSD_ROOT_IN_INIT}/{SSD_SUBPATH}"],
        "env": _identity_env(),
        "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": False,
            "runAsUser": 0,
            "runAsGroup": 0,
        },
        "volumeMounts": [{"name": SSD_VOLUME, "mountPath": SSD_ROOT_IN_INIT}],
    }


def _claim(name: str, size: int, storage_class: str | None, spec: PipelineSpec, settings: DeploySettings) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    if storage_class is not None:
        claim_spec["storageClassName"] = storage_class
    claim_spec["resources"] = {"requests": {"storage": format_bytes(size)}}
    return {
        "metadata": {"name": name, "labels": common_labels(spec, settings)},
        "spec": claim_spec,
    }


def local_storage_class(spec: PipelineSpec, settings: DeploySettings) -> dict[str, Any]:
    """Local volumes must bind where the pod is scheduled, hence WaitForFirstConsumer."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        # Shared by every pipeline that picks the same class: no pipeline labels on it.
        "metadata": {"name": settings.ssd_storage_class,
                     "labels": {"app.kubernetes.io/part-of": "imagekit", "app.kubernetes.io/managed-by": "imagekit"}},
        "provisioner": LOCAL_PROVISIONER,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def build_pod(spec: PipelineSpec, settings: DeploySettings, *, in_place_updates: bool) -> PodPlan:
    """The pod template, its claim templates and any StorageClass they need."""
    volumes: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": format_bytes(spec.shm_bytes)}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "mountPath": SHM_MOUNT},
        {"name": TMP_VOLUME, "mountPath": TMP_MOUNT},
    ]
    claims: list[dict[str, Any]] = []
    storage_classes: list[dict[str, Any]] = []
    init_containers: list[dict[str, Any]] = []

    if spec.checkpoint.ssd is not None:
        if settings.ssd is SsdMode.hostpath:
            host_dir = f"{settings.ssd_host_path.rstrip('/')}/{settings.name}"
            volumes.append({"name": SSD_VOLUME, "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}})
            mounts.append({"name": SSD_VOLUME, "mountPath": str(spec.checkpoint.ssd), "subPathExpr": SSD_SUBPATH})
            init_containers.append(_ssd_init_container(settings))
        else:
            claims.append(_claim(SSD_VOLUME, settings.ssd_size, settings.ssd_storage_class, spec, settings))
            storage_classes.append(local_storage_class(spec, settings))
            mounts.append({"name": SSD_VOLUME, "mountPath": str(spec.checkpoint.ssd)})
    if spec.checkpoint.pv is not None:
        claims.insert(0, _claim(PV_VOLUME, settings.pv_size, settings.pv_storage_class, spec, settings))
        mounts.append({"name": PV_VOLUME, "mountPath": str(spec.checkpoint.pv)})

    amounts = {"memory": format_bytes(settings.memory_limit)}
    if settings.cpus is not None:
        amounts["cpu"] = format_cpus(settings.cpus)
    container = {
        "name": CONTAINER_NAME,
        "image": settings.image,
        "args": metrics_args(),
        "ports": [metrics_port()],
        "env": shard_env(spec, settings) + [{"name": key, "value": value} for key, value in settings.env] + run_env(settings),
        **secret_env(settings),
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": _restricted_security_context(),
        "volumeMounts": mounts,
        **probes(spec),
    }

    pod_spec: dict[str, Any] = {}
    if in_place_updates:
        # Kruise flips this condition to False while it swaps the image in place.
        pod_spec["readinessGates"] = [{"conditionType": IN_PLACE_READINESS_GATE}]
    pod_spec["automountServiceAccountToken"] = False
    pod_spec["enableServiceLinks"] = False
    pod_spec["terminationGracePeriodSeconds"] = settings.termination_grace_seconds
    pod_spec["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes

    template = {
        "metadata": {"labels": common_labels(spec, settings), "annotations": dict(SCRAPE_ANNOTATIONS)},
        "spec": pod_spec,
    }
    return PodPlan(template=template, claim_templates=claims, storage_classes=storage_classes)
