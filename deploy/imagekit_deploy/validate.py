"""Check rendered (or hand-edited) manifests before a cluster sees them.

Four layers, each named in every problem it reports:
  kruise-crd        the Advanced StatefulSet against the OpenKruise CRD's openAPIV3Schema
  kubernetes-X.Y    every resource, pod template and claim template against the core schemas
  kruise-webhook    what Kruise's validating webhook refuses and no schema can say
                    (pkg/webhook/statefulset/validating/statefulset_validation.go)
  kubernetes-api    what the API server refuses beyond the schema (mounts naming volumes, ...)
  imagekit          the runtime's contract: shard identity, shm within the memory limit,
                    checkpoints on durable mounts, a locked-down container
Webhook rules see the object after Kruise's defaulting, as the real webhook does.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath
from typing import Any

from imagekit_runtime.errors import ImagekitError

from .pod import IN_PLACE_READINESS_GATE, LOCAL_PROVISIONER, POD_INDEX_LABEL, SHM_DIR
from .kruise import API_VERSION as KRUISE_API_VERSION
from .renderer import Manifest, Rendering
from .schemas import DEFAULT_KUBERNETES_VERSION, KruiseSchema, KubernetesSchemas
from .settings import GRACE_MARGIN_SECONDS, MIN_PROCESS_MEMORY, SHM_MOUNT, TMP_MOUNT

CHECK_KRUISE_CRD = "kruise-crd"
CHECK_WEBHOOK = "kruise-webhook"
CHECK_API = "kubernetes-api"
CHECK_IMAGEKIT = "imagekit"

PARALLEL = "Parallel"
ORDERED_READY = "OrderedReady"
IN_PLACE_POLICIES = ("InPlaceIfPossible", "InPlaceOnly")
POD_UPDATE_POLICIES = ("ReCreate", *IN_PLACE_POLICIES)
RETENTION_POLICIES = ("Retain", "Delete")
MAX_MIN_READY_SECONDS = 300

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
RANGE_RE = re.compile(r"^(\d+)-(\d+)$")
PERCENT_RE = re.compile(r"^(\d+)%$")
QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
QUANTITY_FACTORS = {
    None: Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
ENV_FIELD_PATHS = {
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}
SUBSCRIPTED_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
VOLUME_NON_SOURCE_KEYS = {"name"}
ALLOWED_INIT_CAPABILITIES = {"CHOWN"}


@dataclass(frozen=True)
class Problem:
    file: str
    resource: str  # Kind/name
    path: str
    message: str
    check: str

    def __str__(self) -> str:
        return f"{self.file}: {self.resource}: {self.path}: {self.message} [{self.check}]"


@dataclass
class ValidationReport:
    kubernetes_version: str
    kruise_crd: str | None = None
    problems: list[Problem] = field(default_factory=list)
    checked: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class ManifestsInvalid(ImagekitError):
    """Manifests a cluster would refuse, or that break the runtime's contract."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problem(s); run `imagekit deploy validate` for all)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


# --- small helpers -----------------------------------------------------------------

def _get(data: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (`1Gi`, `500m`, `1e3`, 42) as a number, or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = QUANTITY_RE.match(value.strip())
    if not match:
        return None
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation:
        return None
    if suffix and suffix[0] in "eE":
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * QUANTITY_FACTORS[suffix]


def _int_value(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    for key, value in _dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in _list(selector.get("matchExpressions")):
        key, operator = _get(expression, "key"), _get(expression, "operator")
        values = _list(_get(expression, "values"))
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _all_containers(pod_spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(_list(pod_spec.get(group))):
            if isinstance(container, dict):
                found.append((f"{group}[{index}]", container))
    return found


def _env_entry(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in _list(container.get("env")):
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def _under(path: str, top: str) -> bool:
    child, parent = PurePosixPath(path), PurePosixPath(top)
    return child == parent or parent in child.parents


def _max_unavailable_problems(value: Any, pod_management_policy: str, path: str) -> list[tuple[str, str]]:
    """Kruise's validateMaxUnavailableField."""
    problems = []
    number = _int_value(value)
    if number is not None:
        if number < 1:
            problems.append((path, f"{number} should not be less than 1"))
    elif isinstance(value, str) and PERCENT_RE.match(value):
        percent = int(value[:-1])
        if percent < 1 or percent > 100:
            problems.append((path, f"{value} must be a percentage from 1% to 100%"))
    else:
        problems.append((path, f"{value!r} must be an integer or a percentage such as 25%"))
    if pod_management_policy != PARALLEL and number != 1:
        problems.append((path, f"{value!r} needs podManagementPolicy Parallel (only 1 works with {pod_management_policy})"))
    return problems


# --- the Kruise webhook --------------------------------------------------------------

def kruise_defaults(statefulset: dict[str, Any]) -> dict[str, Any]:
    """The fields Kruise's mutating webhook fills in before validation (SetDefaultsStatefulSet)."""
    import copy

    result = copy.deepcopy(statefulset)
    spec = result.setdefault("spec", {})
    if not isinstance(spec, dict):
        return result
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", ORDERED_READY)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("partition", 0)
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("podUpdatePolicy", "ReCreate")
                rolling.setdefault("minReadySeconds", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    return result


def kruise_webhook_rules(statefulset: dict[str, Any]) -> list[tuple[str, str]]:
    spec = _dict(kruise_defaults(statefulset).get("spec"))
    problems: list[tuple[str, str]] = []
    policy = spec.get("podManagementPolicy")
    if policy not in (ORDERED_READY, PARALLEL):
        problems.append(("spec.podManagementPolicy", f"{policy!r} must be {ORDERED_READY} or {PARALLEL}"))

    for index, ordinal in enumerate(_list(spec.get("reserveOrdinals"))):
        path = f"spec.reserveOrdinals[{index}]"
        number = _int_value(ordinal)
        if number is not None:
            if number < 0:
                problems.append((path, f"{number} is negative"))
        elif isinstance(ordinal, str) and RANGE_RE.match(ordinal):
            low, high = (int(part) for part in RANGE_RE.match(ordinal).groups())  # type: ignore[union-attr]
            if low > high:
                problems.append((path, f"range {ordinal!r} starts after it ends"))
        else:
            problems.append((path, f"{ordinal!r} is not an ordinal (a non-negative integer) or a range such as '3-5'"))

    scale_max = _get(spec, "scaleStrategy", "maxUnavailable")
    if scale_max is not None:
        problems += _max_unavailable_problems(scale_max, str(policy), "spec.scaleStrategy.maxUnavailable")

    strategy = _dict(spec.get("updateStrategy"))
    strategy_type = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if strategy_type == "OnDelete":
        if rolling is not None:
            problems.append(("spec.updateStrategy.rollingUpdate", "only allowed for updateStrategy RollingUpdate"))
    elif strategy_type == "RollingUpdate":
        rolling = _dict(rolling)
        base = "spec.updateStrategy.rollingUpdate"
        partition = _int_value(rolling.get("partition"))
        if partition is not None and partition < 0:
            problems.append((f"{base}.partition", f"{partition} must be >= 0"))
        min_ready = _int_value(rolling.get("minReadySeconds"))
        if min_ready is not None and not 0 <= min_ready <= MAX_MIN_READY_SECONDS:
            problems.append((f"{base}.minReadySeconds", f"{min_ready} must be from 0 to {MAX_MIN_READY_SECONDS}"))
        problems += _max_unavailable_problems(rolling.get("maxUnavailable"), str(policy), f"{base}.maxUnavailable")
        update_policy = rolling.get("podUpdatePolicy")
        if update_policy not in POD_UPDATE_POLICIES:
            problems.append((f"{base}.podUpdatePolicy", f"{update_policy!r} must be one of {', '.join(POD_UPDATE_POLICIES)}"))
        elif update_policy in IN_PLACE_POLICIES:
            gates = [_get(gate, "conditionType") for gate in _list(_get(spec, "template", "spec", "readinessGates"))]
            if IN_PLACE_READINESS_GATE not in gates:
                problems.append(("spec.template.spec.readinessGates",
                                 f"must contain {IN_PLACE_READINESS_GATE} when podUpdatePolicy is {update_policy}"))
        if rolling.get("unorderedUpdate") is not None and policy != PARALLEL:
            problems.append((f"{base}.unorderedUpdate", "only works with podManagementPolicy Parallel"))
    else:
        problems.append(("spec.updateStrategy.type", f"{strategy_type!r} must be RollingUpdate or OnDelete"))

    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled") if isinstance(retention, dict) else ():  # else the schema reports it
        if retention.get(key) not in RETENTION_POLICIES:
            problems.append((f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                             f"{retention.get(key)!r} must be Retain or Delete"))
    replicas = _int_value(spec.get("replicas"))
    if replicas is not None and replicas < 0:
        problems.append(("spec.replicas", f"{replicas} must be >= 0"))
    return problems


# --- the API server (both flavours) --------------------------------------------------

def statefulset_api_rules(statefulset: dict[str, Any], apps_v1: bool) -> list[tuple[str, str]]:
    spec = _dict(statefulset.get("spec"))
    problems: list[tuple[str, str]] = []
    selector = _dict(spec.get("selector"))
    labels = _dict(_get(spec, "template", "metadata", "labels"))
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(("spec.selector", "an empty selector is invalid for a StatefulSet"))
    elif not _selector_matches(selector, labels):
        problems.append(("spec.template.metadata.labels", "do not match spec.selector"))
    pod_spec = _dict(_get(spec, "template", "spec"))
    restart = pod_spec.get("restartPolicy")
    if restart not in (None, "Always"):
        problems.append(("spec.template.spec.restartPolicy", f"{restart!r}: a StatefulSet supports only Always"))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        problems.append(("spec.template.spec.activeDeadlineSeconds", "is not supported in a StatefulSet"))
    if apps_v1:
        policy = spec.get("podManagementPolicy", ORDERED_READY)
        if policy not in (ORDERED_READY, PARALLEL):
            problems.append(("spec.podManagementPolicy", f"{policy!r} must be {ORDERED_READY} or {PARALLEL}"))
        strategy_type = _get(spec, "updateStrategy", "type", default="RollingUpdate")
        if strategy_type not in ("RollingUpdate", "OnDelete"):
            problems.append(("spec.updateStrategy.type", f"{strategy_type!r} must be RollingUpdate or OnDelete"))
        partition = _int_value(_get(spec, "updateStrategy", "rollingUpdate", "partition"))
        if partition is not None and partition < 0:
            problems.append(("spec.updateStrategy.rollingUpdate.partition", f"{partition} must be >= 0"))
        for key in ("whenDeleted", "whenScaled"):
            value = _get(spec, "persistentVolumeClaimRetentionPolicy", key, default="Retain")
            if value not in RETENTION_POLICIES:
                problems.append((f"spec.persistentVolumeClaimRetentionPolicy.{key}", f"{value!r} must be Retain or Delete"))
        replicas = _int_value(spec.get("replicas"))
        if replicas is not None and replicas < 0:
            problems.append(("spec.replicas", f"{replicas} must be >= 0"))
    claim_names = []
    for index, claim in enumerate(_list(spec.get("volumeClaimTemplates"))):
        name = _get(claim, "metadata", "name")
        path = f"spec.volumeClaimTemplates[{index}]"
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.metadata.name", f"{name!r} is not a DNS label"))
        elif name in claim_names:
            problems.append((f"{path}.metadata.name", f"{name!r} is used twice"))
        claim_names.append(name)
        problems += [(f"{path}.{p}", m) for p, m in claim_rules(_dict(claim))]
    problems += [(f"spec.template.spec.{p}", m) for p, m in pod_spec_rules(pod_spec, claim_names)]
    return problems


def claim_rules(claim: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if not _list(_get(claim, "spec", "accessModes")):
        problems.append(("spec.accessModes", "at least one access mode is required"))
    storage = _get(claim, "spec", "resources", "requests", "storage")
    if storage is None:
        problems.append(("spec.resources.requests.storage", "is required"))
    elif parse_quantity(storage) is None or parse_quantity(storage) <= 0:  # type: ignore[operator]
        problems.append(("spec.resources.requests.storage", f"{storage!r} is not a positive quantity"))
    return problems


def pod_spec_rules(pod_spec: dict[str, Any], claim_names: list[str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    volume_names: list[str] = []
    for index, volume in enumerate(_list(pod_spec.get("volumes"))):
        path = f"volumes[{index}]"
        name = _get(volume, "name")
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.name", f"{name!r} is not a DNS label"))
        elif name in volume_names:
            problems.append((f"{path}.name", f"{name!r} is used twice"))
        elif name in claim_names:
            problems.append((f"{path}.name", f"{name!r} is also a volumeClaimTemplate, which would replace it"))
        volume_names.append(name)
        sources = sorted(set(_dict(volume)) - VOLUME_NON_SOURCE_KEYS)
        if len(sources) != 1:
            problems.append((path, f"needs exactly one volume source, has {len(sources)} ({', '.join(sources) or 'none'})"))
        size_limit = _get(volume, "emptyDir", "sizeLimit")
        if size_limit is not None and parse_quantity(size_limit) is None:
            problems.append((f"{path}.emptyDir.sizeLimit", f"{size_limit!r} is not a quantity"))
    known_volumes = set(volume_names) | set(claim_names)

    if not _list(pod_spec.get("containers")):
        problems.append(("containers", "at least one container is required"))
    container_names: list[str] = []
    for path, container in _all_containers(pod_spec):
        name = container.get("name")
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.name", f"{name!r} is not a DNS label"))
        elif name in container_names:
            problems.append((f"{path}.name", f"{name!r} is used twice"))
        container_names.append(name)
        mount_paths: list[str] = []
        for index, mount in enumerate(_list(container.get("volumeMounts"))):
            mount_path = f"{path}.volumeMounts[{index}]"
            if _get(mount, "name") not in known_volumes:
                problems.append((f"{mount_path}.name", f"{_get(mount, 'name')!r} names no volume or volumeClaimTemplate"))
            target = _get(mount, "mountPath")
            if not isinstance(target, str) or not target.startswith("/"):
                problems.append((f"{mount_path}.mountPath", f"{target!r} is not an absolute path"))
            elif target in mount_paths:
                problems.append((f"{mount_path}.mountPath", f"{target} is mounted twice"))
            mount_paths.append(target)
            if _get(mount, "subPath") and _get(mount, "subPathExpr"):
                problems.append((mount_path, "subPath and subPathExpr are mutually exclusive"))
            for key in ("subPath", "subPathExpr"):
                sub = _get(mount, key)
                if isinstance(sub, str) and (sub.startswith("/") or ".." in PurePosixPath(sub).parts):
                    problems.append((f"{mount_path}.{key}", f"{sub!r} must be a relative path without '..'"))
        for index, entry in enumerate(_list(container.get("env"))):
            env_path = f"{path}.env[{index}]"
            env_name = _get(entry, "name")
            if not isinstance(env_name, str) or not ENV_NAME_RE.match(env_name):
                problems.append((f"{env_path}.name", f"{env_name!r} is not a valid environment variable name"))
            if "value" in _dict(entry) and "valueFrom" in _dict(entry):
                problems.append((env_path, "value and valueFrom are mutually exclusive"))
            field_ref = _get(entry, "valueFrom", "fieldRef", "fieldPath")
            if field_ref is not None and field_ref not in ENV_FIELD_PATHS:
                subscripted = SUBSCRIPTED_FIELD_RE.match(str(field_ref))
                if not subscripted or not _qualified_name(subscripted.group(2)):
                    problems.append((f"{env_path}.valueFrom.fieldRef.fieldPath", f"{field_ref!r} is not supported in env"))
        requests = _dict(_get(container, "resources", "requests"))
        limits = _dict(_get(container, "resources", "limits"))
        for kind, values in (("requests", requests), ("limits", limits)):
            for resource, value in values.items():
                if parse_quantity(value) is None:
                    problems.append((f"{path}.resources.{kind}.{resource}", f"{value!r} is not a quantity"))
        for resource, request in requests.items():
            request_value, limit_value = parse_quantity(request), parse_quantity(limits.get(resource))
            if request_value is not None and limit_value is not None and request_value > limit_value:
                problems.append((f"{path}.resources.requests.{resource}", f"{request} is more than the limit {limits[resource]}"))
    grace = pod_spec.get("terminationGracePeriodSeconds")
    if _int_value(grace) is not None and grace < 0:
        problems.append(("terminationGracePeriodSeconds", f"{grace} must be >= 0"))
    return problems


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (not DNS_SUBDOMAIN_RE.match(prefix) or len(prefix) > 253):
        return False
    return bool(LABEL_NAME_RE.match(name)) and len(name) <= 63


def metadata_rules(body: dict[str, Any], namespaced: bool) -> list[tuple[str, str]]:
    problems = []
    name = _get(body, "metadata", "name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN_RE.match(name) or len(name) > 253:
        problems.append(("metadata.name", f"{name!r} is not a DNS subdomain name"))
    namespace = _get(body, "metadata", "namespace")
    if namespace is not None and (not namespaced or not DNS_LABEL_RE.match(str(namespace))):
        problems.append(("metadata.namespace", f"{namespace!r} is not valid here" if namespaced else "cluster-scoped resources take no namespace"))
    label_maps = [("metadata", "labels"), ("spec", "template", "metadata", "labels"), ("spec", "selector", "matchLabels")]
    if body.get("kind") == "Service":
        label_maps = [("metadata", "labels"), ("spec", "selector")]
    for where in label_maps:
        for key, value in _dict(_get(body, *where)).items():
            if not _qualified_name(str(key)):
                problems.append((".".join(where), f"label key {key!r} is not a qualified name"))
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE_RE.match(value):
                problems.append((f"{'.'.join(where)}.{key}", f"label value {value!r} is not valid"))
    return problems


# --- imagekit's own contract ------------------------------------------------------------

def pipeline_container(pod_spec: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The container that runs the runtime: the one handed IMAGEKIT_SHARD_COUNT."""
    for index, container in enumerate(_list(pod_spec.get("containers"))):
        if isinstance(container, dict) and _env_entry(container, "IMAGEKIT_SHARD_COUNT") is not None:
            return f"spec.template.spec.containers[{index}]", container
    return None


def pod_ordinals(spec: dict[str, Any], reserve_ordinals: bool = True) -> list[int]:
    """The ordinals the controller keeps pods at: the first `replicas` ones not reserved
    (reserveOrdinals is Kruise's; a plain StatefulSet has none)."""
    replicas = _int_value(spec.get("replicas"))
    replicas = 1 if replicas is None else replicas
    start = _int_value(_get(spec, "ordinals", "start")) or 0
    reserved: set[int] = set()
    for ordinal in _list(spec.get("reserveOrdinals")) if reserve_ordinals else []:
        if _int_value(ordinal) is not None:
            reserved.add(ordinal)
        elif isinstance(ordinal, str) and RANGE_RE.match(ordinal):
            low, high = (int(part) for part in RANGE_RE.match(ordinal).groups())  # type: ignore[union-attr]
            reserved.update(range(low, high + 1))
    ordinals: list[int] = []
    candidate = start
    while len(ordinals) < max(replicas, 0):
        if candidate not in reserved:
            ordinals.append(candidate)
        candidate += 1
    return ordinals


def _effective(container: dict[str, Any], pod_context: dict[str, Any], key: str) -> Any:
    value = _get(container, "securityContext", key)
    return pod_context.get(key) if value is None else value


def imagekit_rules(statefulset: dict[str, Any], rendering: Rendering) -> list[tuple[str, str]]:
    spec = _dict(statefulset.get("spec"))
    pod_spec = _dict(_get(spec, "template", "spec"))
    problems: list[tuple[str, str]] = []
    apps_v1 = statefulset.get("apiVersion") == "apps/v1"

    replicas = _int_value(spec.get("replicas"))
    if replicas is not None and replicas < 1:
        problems.append(("spec.replicas", f"{replicas}: at least one pod must run a shard"))

    found = pipeline_container(pod_spec)
    if found is None:
        return problems + [("spec.template.spec.containers", "no container carries IMAGEKIT_SHARD_COUNT, so none runs the pipeline")]
    path, container = found
    env = {name: _env_entry(container, name) for name in
           ("IMAGEKIT_SHARD_INDEX", "IMAGEKIT_SHARD_COUNT", "IMAGEKIT_POD_NAME", "IMAGEKIT_SHM_DIR",
            "IMAGEKIT_SSD_DIR", "IMAGEKIT_PV_DIR")}

    # Shard identity: ordinal label first, the pod name as the fallback; ordinals are shards.
    index_source = _get(env["IMAGEKIT_SHARD_INDEX"], "valueFrom", "fieldRef", "fieldPath")
    if index_source != f"metadata.labels['{POD_INDEX_LABEL}']":
        problems.append((f"{path}.env", f"IMAGEKIT_SHARD_INDEX must come from the downward API label {POD_INDEX_LABEL}"))
    if _get(env["IMAGEKIT_POD_NAME"], "valueFrom", "fieldRef", "fieldPath") != "metadata.name":
        problems.append((f"{path}.env", "IMAGEKIT_POD_NAME must come from metadata.name (the shard fallback)"))
    count_text = _get(env["IMAGEKIT_SHARD_COUNT"], "value")
    shard_count = int(count_text) if isinstance(count_text, str) and count_text.isdigit() else None
    if shard_count is None or shard_count < 1:
        problems.append((f"{path}.env", f"IMAGEKIT_SHARD_COUNT {count_text!r} must be a whole number >= 1"))
    else:
        beyond = [ordinal for ordinal in pod_ordinals(spec, reserve_ordinals=not apps_v1) if ordinal >= shard_count]
        if beyond:
            problems.append(("spec.replicas", f"pod ordinal(s) {', '.join(map(str, beyond))} would run shards that do not exist "
                             f"(IMAGEKIT_SHARD_COUNT is {shard_count}); ordinals are shards, so lower replicas "
                             "by one for each reserved ordinal"))

    volumes = {_get(v, "name"): _dict(v) for v in _list(pod_spec.get("volumes"))}
    claims = {_get(c, "metadata", "name") for c in _list(spec.get("volumeClaimTemplates"))}
    mounts = [_dict(m) for m in _list(container.get("volumeMounts"))]

    def mount_for(target: str) -> dict[str, Any] | None:
        best = None
        for mount in mounts:
            mount_path = mount.get("mountPath")
            if isinstance(mount_path, str) and _under(target, mount_path):
                if best is None or len(mount_path) > len(best["mountPath"]):
                    best = mount
        return best

    # shm: a memory emptyDir at /dev/shm that fits in the container's memory limit.
    shm_mount = next((m for m in mounts if m.get("mountPath") == SHM_MOUNT), None)
    shm_volume = volumes.get(shm_mount.get("name")) if shm_mount else None
    limit = parse_quantity(_get(container, "resources", "limits", "memory"))
    if shm_volume is None or _get(shm_volume, "emptyDir", "medium") != "Memory":
        problems.append((f"{path}.volumeMounts", f"{SHM_MOUNT} must be an emptyDir with medium Memory"))
    else:
        shm_size = parse_quantity(_get(shm_volume, "emptyDir", "sizeLimit"))
        if shm_size is None:
            problems.append(("spec.template.spec.volumes", f"the {SHM_MOUNT} emptyDir needs a sizeLimit (the pipeline's shm)"))
        elif limit is None:
            problems.append((f"{path}.resources.limits.memory", f"is required: the {SHM_MOUNT} emptyDir counts against it"))
        elif shm_size >= limit:
            problems.append((f"{path}.resources.limits.memory",
                             f"{_get(container, 'resources', 'limits', 'memory')} is not larger than shm "
                             f"{_get(shm_volume, 'emptyDir', 'sizeLimit')}; the memory emptyDir counts against it"))
        elif limit - shm_size < MIN_PROCESS_MEMORY:
            problems.append((f"{path}.resources.limits.memory", "leaves less than 128Mi beside shm for the step processes"))
    shm_dir = _get(env["IMAGEKIT_SHM_DIR"], "value") or SHM_DIR
    if not _under(shm_dir, SHM_MOUNT):
        problems.append((f"{path}.env", f"IMAGEKIT_SHM_DIR {shm_dir} is not under {SHM_MOUNT}"))
    if mount_for(TMP_MOUNT) is None or mount_for(TMP_MOUNT).get("mountPath") != TMP_MOUNT:  # type: ignore[union-attr]
        problems.append((f"{path}.volumeMounts", f"{TMP_MOUNT} needs a volume: the root filesystem is read-only"))

    # Checkpoints: each on a writable mount that outlives what it must survive.
    durable_names = {"hostPath": "a hostPath", "claim": "a volumeClaimTemplate"}
    for variable, role, durable in (("IMAGEKIT_SSD_DIR", "SSD", ("hostPath", "claim")), ("IMAGEKIT_PV_DIR", "PV", ("claim",))):
        target = _get(env[variable], "value")
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
                             f"which does not survive {survives}; use {' or '.join(durable_names[d] for d in durable)}"))
        if kind == "hostPath" and "$(IMAGEKIT_POD_NAME)" not in str(mount.get("subPathExpr", "")):
            problems.append((f"{path}.volumeMounts", f"hostPath volume {volume_name!r} needs a per-pod subPathExpr "
                             "with $(IMAGEKIT_POD_NAME), or pods on one node share checkpoints"))
    if claims:
        for key in ("whenDeleted", "whenScaled"):
            if _get(spec, "persistentVolumeClaimRetentionPolicy", key, default="Retain") != "Retain":
                problems.append((f"spec.persistentVolumeClaimRetentionPolicy.{key}", "must be Retain: the claims hold checkpoints"))

    # The container runs locked down; an init container may only take CHOWN back.
    pod_context = _dict(pod_spec.get("securityContext"))
    if _effective(container, pod_context, "runAsNonRoot") is not True:
        problems.append((f"{path}.securityContext.runAsNonRoot", "must be true"))
    if _effective(container, pod_context, "runAsUser") == 0:
        problems.append((f"{path}.securityContext.runAsUser", "must not be 0"))
    if _get(container, "securityContext", "readOnlyRootFilesystem") is not True:
        problems.append((f"{path}.securityContext.readOnlyRootFilesystem", "must be true; the runtime writes only to volumes"))
    for container_path, any_container in [(path, container)] + [
            (p, c) for p, c in _all_containers(pod_spec) if p.startswith("initContainers")]:
        context = _dict(any_container.get("securityContext"))
        full = container_path if container_path.startswith("spec.") else f"spec.template.spec.{container_path}"
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append((f"{full}.securityContext.allowPrivilegeEscalation", "must be false"))
        if context.get("privileged"):
            problems.append((f"{full}.securityContext.privileged", "must not be true"))
        if "ALL" not in _list(_get(context, "capabilities", "drop")):
            problems.append((f"{full}.securityContext.capabilities.drop", "must contain ALL"))
        added = set(_list(_get(context, "capabilities", "add")))
        allowed = set() if any_container is container else ALLOWED_INIT_CAPABILITIES
        if added - allowed:
            problems.append((f"{full}.securityContext.capabilities.add", f"{sorted(added - allowed)} is not allowed"))

    grace = pod_spec.get("terminationGracePeriodSeconds")
    if _int_value(grace) is None or grace < GRACE_MARGIN_SECONDS:
        problems.append(("spec.template.spec.terminationGracePeriodSeconds",
                         f"{grace!r}: needs at least {GRACE_MARGIN_SECONDS}s to flush a checkpoint on SIGTERM"))
    gates = [_get(gate, "conditionType") for gate in _list(pod_spec.get("readinessGates"))]
    if apps_v1 and IN_PLACE_READINESS_GATE in gates:
        problems.append(("spec.template.spec.readinessGates",
                         f"{IN_PLACE_READINESS_GATE} without Kruise is never set, so pods never become Ready"))

    # The governing Service must exist, be headless and select these pods.
    service_name = spec.get("serviceName")
    services = [m for m in rendering.manifests if m.kind == "Service" and m.name == service_name]
    if not services:
        problems.append(("spec.serviceName", f"{service_name!r} names no Service in these manifests"))
    else:
        service = services[0].body
        if _get(service, "spec", "clusterIP") != "None":
            problems.append(("spec.serviceName", f"Service {service_name} must be headless (clusterIP: None)"))
        if not _selector_matches({"matchLabels": _dict(_get(service, "spec", "selector"))},
                                 _dict(_get(spec, "template", "metadata", "labels"))):
            problems.append(("spec.serviceName", f"Service {service_name}'s selector does not match the pod labels"))
    return problems


def storage_class_rules(body: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if not body.get("provisioner"):
        problems.append(("provisioner", "is required"))
    mode = body.get("volumeBindingMode", "Immediate")
    if mode not in ("Immediate", "WaitForFirstConsumer"):
        problems.append(("volumeBindingMode", f"{mode!r} must be Immediate or WaitForFirstConsumer"))
    elif body.get("provisioner") == LOCAL_PROVISIONER and mode != "WaitForFirstConsumer":
        problems.append(("volumeBindingMode", "local volumes need WaitForFirstConsumer, or claims bind before the pod has a node"))
    if body.get("reclaimPolicy", "Delete") not in RETENTION_POLICIES:
        problems.append(("reclaimPolicy", f"{body.get('reclaimPolicy')!r} must be Retain or Delete"))
    return problems


# --- entry point --------------------------------------------------------------------------

def _definition_for(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


CLUSTER_SCOPED = {"StorageClass", "Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}


def validate_rendering(
    rendering: Rendering,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    kruise_crd: Path | None = None,
    schemas: bool = True,
) -> ValidationReport:
    """Every problem of every layer; an empty list means a cluster (with Kruise, for that flavour) accepts it."""
    kubernetes = KubernetesSchemas(kubernetes_version) if schemas else None
    report = ValidationReport(kubernetes_version=kubernetes.version if kubernetes else "not checked")
    kubernetes_check = f"kubernetes-{report.kubernetes_version}"
    kruise: KruiseSchema | None = None
    workloads = [m for m in rendering.manifests if m.kind == "StatefulSet"]
    if len(workloads) != 1:
        report.problems.append(Problem("-", "-", "-", f"expected exactly one StatefulSet, found {len(workloads)}", CHECK_IMAGEKIT))

    for manifest in rendering.manifests:
        body = manifest.body
        resource = f"{manifest.kind or '?'}/{manifest.name or '?'}"
        checks: list[str] = []

        def add(found: Iterable[Any], check: str, manifest: Manifest = manifest, resource: str = resource) -> None:
            for item in found:
                path, message = (item.path, item.message) if hasattr(item, "path") else item
                report.problems.append(Problem(manifest.filename, resource, path, message, check))

        if not manifest.api_version or not manifest.kind:
            add([("(root)", "apiVersion and kind are required")], CHECK_API)
            continue
        is_kruise = manifest.api_version == KRUISE_API_VERSION and manifest.kind == "StatefulSet"
        if kubernetes is not None:
            if is_kruise:
                if kruise is None:
                    kruise = KruiseSchema(kruise_crd)
                    report.kruise_crd = f"{kruise.path} ({kruise.source})"
                add(kruise.errors(body), CHECK_KRUISE_CRD)
                add(kubernetes.errors(_get(body, "metadata", default={}), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
                                      ("metadata",)), kubernetes_check)
                add(kubernetes.errors(_get(body, "spec", "template", default={}), "io.k8s.api.core.v1.PodTemplateSpec",
                                      ("spec", "template")), kubernetes_check)
                for index, claim in enumerate(_list(_get(body, "spec", "volumeClaimTemplates"))):
                    add(kubernetes.errors(claim, "io.k8s.api.core.v1.PersistentVolumeClaim",
                                          ("spec", "volumeClaimTemplates", index)), kubernetes_check)
                checks += [CHECK_KRUISE_CRD, kubernetes_check]
            else:
                definition = _definition_for(manifest.api_version, manifest.kind)
                if not kubernetes.has(definition):
                    add([("(root)", f"no Kubernetes {report.kubernetes_version} schema for {manifest.api_version} {manifest.kind}")],
                        kubernetes_check)
                else:
                    add(kubernetes.errors(body, definition), kubernetes_check)
                    checks.append(kubernetes_check)

        add(metadata_rules(body, manifest.kind not in CLUSTER_SCOPED), CHECK_API)
        checks.append(CHECK_API)
        if manifest.kind == "StatefulSet":
            add(statefulset_api_rules(body, apps_v1=not is_kruise), CHECK_API)
            if is_kruise:
                add(kruise_webhook_rules(body), CHECK_WEBHOOK)
                checks.append(CHECK_WEBHOOK)
            add(imagekit_rules(body, rendering), CHECK_IMAGEKIT)
            checks.append(CHECK_IMAGEKIT)
        elif manifest.kind == "StorageClass":
            add(storage_class_rules(body), CHECK_API)
        elif manifest.kind == "PersistentVolumeClaim":
            add(claim_rules(body), CHECK_API)
        report.checked.append({"file": manifest.filename, "resource": resource, "checks": checks})
    return report


def check_rendering(rendering: Rendering, **options: Any) -> ValidationReport:
    """validate_rendering, raising ManifestsInvalid (exit 2) on any problem."""
    report = validate_rendering(rendering, **options)
    if report.problems:
        raise ManifestsInvalid(report.problems)
    return report
