"""imagekit's own rules: what the runtime needs from the pod beyond what a cluster accepts.
Shard identity from the ordinal, no ordinal beyond the shard count, shm in memory and within
the memory limit, checkpoints on writable durable mounts, a locked-down container, a grace
period to flush, and a headless governing Service."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagekit_core import contract
from imagekit_core.spec.quantity import QuantityError, bytes_of, format_bytes

from ..ordinals import pod_ordinals, reserved_ordinals
from ..pod import IN_PLACE_READINESS_GATE, POD_INDEX_LABEL, SHM_DIR
from ..renderer import Rendering
from ..settings import GRACE_MARGIN_SECONDS, MIN_PROCESS_MEMORY, SHM_MOUNT, TMP_MOUNT
from .fields import Found, all_containers, as_dict, as_list, env_entry, get, int_value, quantity_or_none, selector_matches, under
from .monitoring_rules import probe_rules

ALLOWED_INIT_CAPABILITIES = {"CHOWN"}
PIPELINE_ENV = (contract.SHARD_INDEX, contract.SHARD_COUNT, contract.POD_NAME, contract.SHM_DIR,
                contract.SSD_DIR, contract.PV_DIR)
# (variable, role, volume kinds that outlive what the role must survive)
CHECKPOINT_DIRS = ((contract.SSD_DIR, "SSD", ("hostPath", "claim")), (contract.PV_DIR, "PV", ("claim",)))
DURABLE_NAMES = {"hostPath": "a hostPath", "claim": "a volumeClaimTemplate"}

Mounts = Callable[[str], "dict[str, Any] | None"]


def pipeline_container(pod_spec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The container that runs the runtime: the one handed IMAGEKIT_SHARD_COUNT."""
    for index, container in enumerate(as_list(pod_spec.get("containers"))):
        if isinstance(container, dict) and env_entry(container, contract.SHARD_COUNT) is not None:
            return f"spec.template.spec.containers[{index}]", container
    return None


def workload_ordinals(spec: dict[str, Any], apps_v1: bool) -> list[int]:
    """The ordinals the controller keeps pods at (reserveOrdinals is Kruise's; apps/v1 has none)."""
    replicas = int_value(spec.get("replicas"))
    reserved = frozenset() if apps_v1 else reserved_ordinals(spec.get("reserveOrdinals")).ordinals
    start = int_value(get(spec, "ordinals", "start")) or 0
    return pod_ordinals(1 if replicas is None else replicas, reserved, start)


def shard_rules(path: str, env: dict[str, Any], spec: dict[str, Any], apps_v1: bool) -> Found:
    """Shard identity: ordinal label first, the pod name as the fallback; ordinals are shards."""
    problems: Found = []
    if get(env[contract.SHARD_INDEX], "valueFrom", "fieldRef", "fieldPath") != f"metadata.labels['{POD_INDEX_LABEL}']":
        problems.append((f"{path}.env", f"{contract.SHARD_INDEX} must come from the downward API label {POD_INDEX_LABEL}"))
    if get(env[contract.POD_NAME], "valueFrom", "fieldRef", "fieldPath") != "metadata.name":
        problems.append((f"{path}.env", f"{contract.POD_NAME} must come from metadata.name (the shard fallback)"))
    count_text = get(env[contract.SHARD_COUNT], "value")
    shard_count = int(count_text) if isinstance(count_text, str) and count_text.isdigit() else None
    if shard_count is None or shard_count < 1:
        return problems + [(f"{path}.env", f"{contract.SHARD_COUNT} {count_text!r} must be a whole number >= 1")]
    beyond = [ordinal for ordinal in workload_ordinals(spec, apps_v1) if ordinal >= shard_count]
    if beyond:
        problems.append(("spec.replicas", f"pod ordinal(s) {', '.join(map(str, beyond))} would run shards that do not exist "
                         f"({contract.SHARD_COUNT} is {shard_count}); ordinals are shards, so lower replicas "
                         "by one for each reserved ordinal"))
    return problems


def shm_rules(path: str, container: dict[str, Any], shm_volume: dict[str, Any] | None) -> Found:
    """shm: a memory emptyDir at /dev/shm, a whole number of bytes, that fits in the memory limit."""
    if shm_volume is None or get(shm_volume, "emptyDir", "medium") != "Memory":
        return [(f"{path}.volumeMounts", f"{SHM_MOUNT} must be an emptyDir with medium Memory")]
    size_text = get(shm_volume, "emptyDir", "sizeLimit")
    limit_text = get(container, "resources", "limits", "memory")
    limit = quantity_or_none(limit_text)
    if size_text is None:
        return [("spec.template.spec.volumes", f"the {SHM_MOUNT} emptyDir needs a sizeLimit (the pipeline's shm)")]
    try:
        shm_size = bytes_of(size_text)
    except QuantityError as error:
        return [("spec.template.spec.volumes", f"the {SHM_MOUNT} emptyDir sizeLimit {error.problem} (fix: {error.fix})")]
    if limit is None:
        return [(f"{path}.resources.limits.memory", f"is required: the {SHM_MOUNT} emptyDir counts against it")]
    if shm_size >= limit:
        return [(f"{path}.resources.limits.memory", f"{limit_text} is not larger than shm {size_text}; "
                 "the memory emptyDir counts against it")]
    if limit - shm_size < MIN_PROCESS_MEMORY:
        return [(f"{path}.resources.limits.memory",
                 f"leaves less than {format_bytes(MIN_PROCESS_MEMORY)} beside shm for the step processes")]
    return []


def checkpoint_rules(path: str, env: dict[str, Any], spec: dict[str, Any], volumes: dict[Any, dict[str, Any]],
                     mount_for: Mounts) -> Found:
    """Checkpoints: each on a writable mount that outlives what it must survive."""
    problems: Found = []
    claims = {get(c, "metadata", "name") for c in as_list(spec.get("volumeClaimTemplates"))}
    for variable, role, durable in CHECKPOINT_DIRS:
        target = get(env[variable], "value")
        if target is None:
            continue
        mount = mount_for(str(target))
        if mount is None or mount.get("mountPath") in ("/", SHM_MOUNT, TMP_MOUNT):
            problems.append((f"{path}.env", f"{variable} {target} is not under a checkpoint volume mount; "
                             "the root filesystem is read-only"))
            continue
        if mount.get("readOnly"):
            problems.append((f"{path}.volumeMounts", f"{mount.get('mountPath')} holds {variable} but is mounted readOnly"))
        volume_name = mount.get("name")
        kind = "claim" if volume_name in claims else ("hostPath" if "hostPath" in volumes.get(volume_name, {}) else "other")
        if kind not in durable:
            survives = "the pod" if role == "SSD" else "the node"
            problems.append((f"{path}.volumeMounts", f"{role} checkpoints at {target} sit on volume {volume_name!r}, "
                             f"which does not survive {survives}; use {' or '.join(DURABLE_NAMES[d] for d in durable)}"))
        if kind == "hostPath" and f"$({contract.POD_NAME})" not in str(mount.get("subPathExpr", "")):
            problems.append((f"{path}.volumeMounts", f"hostPath volume {volume_name!r} needs a per-pod subPathExpr "
                             f"with $({contract.POD_NAME}), or pods on one node share checkpoints"))
    if claims:
        for key in ("whenDeleted", "whenScaled"):
            if get(spec, "persistentVolumeClaimRetentionPolicy", key, default="Retain") != "Retain":
                problems.append((f"spec.persistentVolumeClaimRetentionPolicy.{key}", "must be Retain: the claims hold checkpoints"))
    return problems


def credential_rules(path: str, container: dict[str, Any]) -> Found:
    """S3 credentials never sit in the manifest as plain values: they come from a Secret (envFrom or secretKeyRef)."""
    problems: Found = []
    for index, entry in enumerate(as_list(container.get("env"))):
        if get(entry, "name") in contract.S3_CREDENTIALS and "value" in as_dict(entry):
            problems.append((f"{path}.env[{index}]", f"{get(entry, 'name')} is a credential in plain text; put it in "
                             "a Secret and pass `imagekit deploy render --s3-secret NAME` (envFrom)"))
    return problems


def _effective(container: dict[str, Any], pod_context: dict[str, Any], key: str) -> Any:
    value = get(container, "securityContext", key)
    return pod_context.get(key) if value is None else value


def security_rules(path: str, container: dict[str, Any], pod_spec: dict[str, Any]) -> Found:
    """The container runs locked down; an init container may only take CHOWN back."""
    problems: Found = []
    pod_context = as_dict(pod_spec.get("securityContext"))
    if _effective(container, pod_context, "runAsNonRoot") is not True:
        problems.append((f"{path}.securityContext.runAsNonRoot", "must be true"))
    if _effective(container, pod_context, "runAsUser") == 0:
        problems.append((f"{path}.securityContext.runAsUser", "must not be 0"))
    if get(container, "securityContext", "readOnlyRootFilesystem") is not True:
        problems.append((f"{path}.securityContext.readOnlyRootFilesystem", "must be true; the runtime writes only to volumes"))
    inits = [(f"spec.template.spec.{p}", c) for p, c in all_containers(pod_spec) if p.startswith("initContainers")]
    for full, any_container in [(path, container), *inits]:
        context = as_dict(any_container.get("securityContext"))
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append((f"{full}.securityContext.allowPrivilegeEscalation", "must be false"))
        if context.get("privileged"):
            problems.append((f"{full}.securityContext.privileged", "must not be true"))
        if "ALL" not in as_list(get(context, "capabilities", "drop")):
            problems.append((f"{full}.securityContext.capabilities.drop", "must contain ALL"))
        added = set(as_list(get(context, "capabilities", "add")))
        allowed = set() if any_container is container else ALLOWED_INIT_CAPABILITIES
        if added - allowed:
            problems.append((f"{full}.securityContext.capabilities.add", f"{sorted(added - allowed)} is not allowed"))
    return problems


def pod_lifecycle_rules(pod_spec: dict[str, Any], apps_v1: bool) -> Found:
    problems: Found = []
    grace = pod_spec.get("terminationGracePeriodSeconds")
    seconds = int_value(grace)
    if seconds is None or seconds < GRACE_MARGIN_SECONDS:
        problems.append(("spec.template.spec.terminationGracePeriodSeconds",
                         f"{grace!r}: needs at least {GRACE_MARGIN_SECONDS}s to flush a checkpoint on SIGTERM"))
    gates = [get(gate, "conditionType") for gate in as_list(pod_spec.get("readinessGates"))]
    if apps_v1 and IN_PLACE_READINESS_GATE in gates:
        problems.append(("spec.template.spec.readinessGates",
                         f"{IN_PLACE_READINESS_GATE} without Kruise is never set, so pods never become Ready"))
    return problems


def service_rules(spec: dict[str, Any], rendering: Rendering) -> Found:
    """The governing Service must exist, be headless and select these pods."""
    service_name = spec.get("serviceName")
    services = [m for m in rendering.manifests if m.kind == "Service" and m.name == service_name]
    if not services:
        return [("spec.serviceName", f"{service_name!r} names no Service in these manifests")]
    service = services[0].body
    problems: Found = []
    if get(service, "spec", "clusterIP") != "None":
        problems.append(("spec.serviceName", f"Service {service_name} must be headless (clusterIP: None)"))
    if not selector_matches({"matchLabels": as_dict(get(service, "spec", "selector"))},
                            as_dict(get(spec, "template", "metadata", "labels"))):
        problems.append(("spec.serviceName", f"Service {service_name}'s selector does not match the pod labels"))
    return problems


def imagekit_rules(statefulset: dict[str, Any], rendering: Rendering) -> Found:
    spec = as_dict(statefulset.get("spec"))
    pod_spec = as_dict(get(spec, "template", "spec"))
    problems: Found = []
    apps_v1 = statefulset.get("apiVersion") == "apps/v1"
    replicas = int_value(spec.get("replicas"))
    if replicas is not None and replicas < 1:
        problems.append(("spec.replicas", f"{replicas}: at least one pod must run a shard"))
    found = pipeline_container(pod_spec)
    if found is None:
        return problems + [("spec.template.spec.containers", f"no container carries {contract.SHARD_COUNT}, so none runs the pipeline")]
    path, container = found
    env = {name: env_entry(container, name) for name in PIPELINE_ENV}
    problems += shard_rules(path, env, spec, apps_v1)

    volumes = {get(v, "name"): as_dict(v) for v in as_list(pod_spec.get("volumes"))}
    mounts = [as_dict(m) for m in as_list(container.get("volumeMounts"))]

    def mount_for(target: str) -> dict[str, Any] | None:
        """The mount holding target: the deepest mount path above it."""
        holding = [m for m in mounts if isinstance(m.get("mountPath"), str) and under(target, m["mountPath"])]
        return max(holding, key=lambda m: len(m["mountPath"]), default=None)

    shm_mount = next((m for m in mounts if m.get("mountPath") == SHM_MOUNT), None)
    problems += shm_rules(path, container, volumes.get(shm_mount.get("name")) if shm_mount else None)
    shm_dir = get(env[contract.SHM_DIR], "value") or SHM_DIR
    if not under(shm_dir, SHM_MOUNT):
        problems.append((f"{path}.env", f"{contract.SHM_DIR} {shm_dir} is not under {SHM_MOUNT}"))
    tmp = mount_for(TMP_MOUNT)
    if tmp is None or tmp.get("mountPath") != TMP_MOUNT:
        problems.append((f"{path}.volumeMounts", f"{TMP_MOUNT} needs a volume: the root filesystem is read-only"))
    problems += checkpoint_rules(path, env, spec, volumes, mount_for)
    problems += security_rules(path, container, pod_spec)
    problems += credential_rules(path, container)
    problems += probe_rules(path, container, as_dict(get(spec, "template", "metadata")))
    problems += pod_lifecycle_rules(pod_spec, apps_v1)
    problems += service_rules(spec, rendering)
    return problems
