"""What the Kubernetes API server refuses beyond the OpenAPI schemas (both flavors): names,
labels, selectors matching the pod, mounts naming volumes, env field paths, quantities,
requests within limits, StorageClass binding modes."""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from ..pod import LOCAL_PROVISIONER
from .fields import (
    DNS_LABEL_RE,
    DNS_SUBDOMAIN_RE,
    ENV_NAME_RE,
    LABEL_VALUE_RE,
    Found,
    all_containers,
    as_dict,
    as_list,
    get,
    int_value,
    qualified_name,
    quantity_or_none,
    selector_matches,
)
from .webhook_rules import ORDERED_READY, PARALLEL, RETENTION_POLICIES

ENV_FIELD_PATHS = {
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
}
SUBSCRIPTED_FIELD_RE = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
VOLUME_NON_SOURCE_KEYS = {"name"}


def _apps_v1_rules(spec: dict[str, Any]) -> Found:
    """apps/v1 only: Kruise's webhook checks these itself for the Advanced StatefulSet."""
    problems: Found = []
    policy = spec.get("podManagementPolicy", ORDERED_READY)
    if policy not in (ORDERED_READY, PARALLEL):
        problems.append(("spec.podManagementPolicy", f"{policy!r} must be {ORDERED_READY} or {PARALLEL}"))
    strategy_type = get(spec, "updateStrategy", "type", default="RollingUpdate")
    if strategy_type not in ("RollingUpdate", "OnDelete"):
        problems.append(("spec.updateStrategy.type", f"{strategy_type!r} must be RollingUpdate or OnDelete"))
    partition = int_value(get(spec, "updateStrategy", "rollingUpdate", "partition"))
    if partition is not None and partition < 0:
        problems.append(("spec.updateStrategy.rollingUpdate.partition", f"{partition} must be >= 0"))
    for key in ("whenDeleted", "whenScaled"):
        value = get(spec, "persistentVolumeClaimRetentionPolicy", key, default="Retain")
        if value not in RETENTION_POLICIES:
            problems.append((f"spec.persistentVolumeClaimRetentionPolicy.{key}", f"{value!r} must be Retain or Delete"))
    replicas = int_value(spec.get("replicas"))
    if replicas is not None and replicas < 0:
        problems.append(("spec.replicas", f"{replicas} must be >= 0"))
    return problems


def statefulset_api_rules(statefulset: dict[str, Any], apps_v1: bool) -> Found:
    spec = as_dict(statefulset.get("spec"))
    problems: Found = []
    selector = as_dict(spec.get("selector"))
    labels = as_dict(get(spec, "template", "metadata", "labels"))
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        problems.append(("spec.selector", "an empty selector is invalid for a StatefulSet"))
    elif not selector_matches(selector, labels):
        problems.append(("spec.template.metadata.labels", "do not match spec.selector"))
    pod_spec = as_dict(get(spec, "template", "spec"))
    restart = pod_spec.get("restartPolicy")
    if restart not in (None, "Always"):
        problems.append(("spec.template.spec.restartPolicy", f"{restart!r}: a StatefulSet supports only Always"))
    if pod_spec.get("activeDeadlineSeconds") is not None:
        problems.append(("spec.template.spec.activeDeadlineSeconds", "is not supported in a StatefulSet"))
    if apps_v1:
        problems += _apps_v1_rules(spec)
    claim_names: list[Any] = []
    for index, claim in enumerate(as_list(spec.get("volumeClaimTemplates"))):
        name = get(claim, "metadata", "name")
        path = f"spec.volumeClaimTemplates[{index}]"
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.metadata.name", f"{name!r} is not a DNS label"))
        elif name in claim_names:
            problems.append((f"{path}.metadata.name", f"{name!r} is used twice"))
        claim_names.append(name)
        problems += [(f"{path}.{p}", m) for p, m in claim_rules(as_dict(claim))]
    problems += [(f"spec.template.spec.{p}", m) for p, m in pod_spec_rules(pod_spec, claim_names)]
    return problems


def claim_rules(claim: dict[str, Any]) -> Found:
    problems = []
    if not as_list(get(claim, "spec", "accessModes")):
        problems.append(("spec.accessModes", "at least one access mode is required"))
    storage = get(claim, "spec", "resources", "requests", "storage")
    amount = quantity_or_none(storage)
    if storage is None:
        problems.append(("spec.resources.requests.storage", "is required"))
    elif amount is None or amount <= 0:
        problems.append(("spec.resources.requests.storage", f"{storage!r} is not a positive quantity"))
    return problems


def volume_rules(pod_spec: dict[str, Any], claim_names: list[Any]) -> tuple[Found, list[Any]]:
    problems: Found = []
    volume_names: list[Any] = []
    for index, volume in enumerate(as_list(pod_spec.get("volumes"))):
        path = f"volumes[{index}]"
        name = get(volume, "name")
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.name", f"{name!r} is not a DNS label"))
        elif name in volume_names:
            problems.append((f"{path}.name", f"{name!r} is used twice"))
        elif name in claim_names:
            problems.append((f"{path}.name", f"{name!r} is also a volumeClaimTemplate, which would replace it"))
        volume_names.append(name)
        sources = sorted(set(as_dict(volume)) - VOLUME_NON_SOURCE_KEYS)
        if len(sources) != 1:
            problems.append((path, f"needs exactly one volume source, has {len(sources)} ({', '.join(sources) or 'none'})"))
        size_limit = get(volume, "emptyDir", "sizeLimit")
        if size_limit is not None and quantity_or_none(size_limit) is None:
            problems.append((f"{path}.emptyDir.sizeLimit", f"{size_limit!r} is not a quantity"))
    return problems, volume_names


def mount_rules(path: str, container: dict[str, Any], known_volumes: set[Any]) -> Found:
    problems: Found = []
    mount_paths: list[Any] = []
    for index, mount in enumerate(as_list(container.get("volumeMounts"))):
        mount_path = f"{path}.volumeMounts[{index}]"
        if get(mount, "name") not in known_volumes:
            problems.append((f"{mount_path}.name", f"{get(mount, 'name')!r} names no volume or volumeClaimTemplate"))
        target = get(mount, "mountPath")
        if not isinstance(target, str) or not target.startswith("/"):
            problems.append((f"{mount_path}.mountPath", f"{target!r} is not an absolute path"))
        elif target in mount_paths:
            problems.append((f"{mount_path}.mountPath", f"{target} is mounted twice"))
        mount_paths.append(target)
        if get(mount, "subPath") and get(mount, "subPathExpr"):
            problems.append((mount_path, "subPath and subPathExpr are mutually exclusive"))
        for key in ("subPath", "subPathExpr"):
            sub = get(mount, key)
            if isinstance(sub, str) and (sub.startswith("/") or ".." in PurePosixPath(sub).parts):
                problems.append((f"{mount_path}.{key}", f"{sub!r} must be a relative path without '..'"))
    return problems


def env_rules(path: str, container: dict[str, Any]) -> Found:
    problems: Found = []
    for index, entry in enumerate(as_list(container.get("env"))):
        env_path = f"{path}.env[{index}]"
        env_name = get(entry, "name")
        if not isinstance(env_name, str) or not ENV_NAME_RE.match(env_name):
            problems.append((f"{env_path}.name", f"{env_name!r} is not a valid environment variable name"))
        if "value" in as_dict(entry) and "valueFrom" in as_dict(entry):
            problems.append((env_path, "value and valueFrom are mutually exclusive"))
        field_ref = get(entry, "valueFrom", "fieldRef", "fieldPath")
        if field_ref is not None and field_ref not in ENV_FIELD_PATHS:
            subscripted = SUBSCRIPTED_FIELD_RE.match(str(field_ref))
            if not subscripted or not qualified_name(subscripted.group(2)):
                problems.append((f"{env_path}.valueFrom.fieldRef.fieldPath", f"{field_ref!r} is not supported in env"))
    return problems + env_from_rules(path, container)


def env_from_rules(path: str, container: dict[str, Any]) -> Found:
    """envFrom: each source one Secret or ConfigMap, by a valid name; a prefix that makes valid names."""
    problems: Found = []
    for index, source in enumerate(as_list(container.get("envFrom"))):
        source_path = f"{path}.envFrom[{index}]"
        refs = [key for key in ("secretRef", "configMapRef") if key in as_dict(source)]
        if len(refs) != 1:
            problems.append((source_path, "needs exactly one of secretRef and configMapRef"))
            continue
        name = get(source, refs[0], "name")
        if not isinstance(name, str) or not DNS_SUBDOMAIN_RE.match(name) or len(name) > 253:
            problems.append((f"{source_path}.{refs[0]}.name", f"{name!r} is not a DNS subdomain name"))
        prefix = get(source, "prefix")
        if prefix is not None and (not isinstance(prefix, str) or not ENV_NAME_RE.match(prefix)):
            problems.append((f"{source_path}.prefix", f"{prefix!r} does not start a valid environment variable name"))
    return problems


def resource_rules(path: str, container: dict[str, Any]) -> Found:
    problems: Found = []
    requests = as_dict(get(container, "resources", "requests"))
    limits = as_dict(get(container, "resources", "limits"))
    for kind, values in (("requests", requests), ("limits", limits)):
        for resource, value in values.items():
            if quantity_or_none(value) is None:
                problems.append((f"{path}.resources.{kind}.{resource}", f"{value!r} is not a quantity"))
    for resource, request in requests.items():
        request_value, limit_value = quantity_or_none(request), quantity_or_none(limits.get(resource))
        if request_value is not None and limit_value is not None and request_value > limit_value:
            problems.append((f"{path}.resources.requests.{resource}", f"{request} is more than the limit {limits[resource]}"))
    return problems


def pod_spec_rules(pod_spec: dict[str, Any], claim_names: list[Any]) -> Found:
    problems, volume_names = volume_rules(pod_spec, claim_names)
    known_volumes = set(volume_names) | set(claim_names)
    if not as_list(pod_spec.get("containers")):
        problems.append(("containers", "at least one container is required"))
    container_names: list[Any] = []
    for path, container in all_containers(pod_spec):
        name = container.get("name")
        if not isinstance(name, str) or not DNS_LABEL_RE.match(name):
            problems.append((f"{path}.name", f"{name!r} is not a DNS label"))
        elif name in container_names:
            problems.append((f"{path}.name", f"{name!r} is used twice"))
        container_names.append(name)
        problems += mount_rules(path, container, known_volumes)
        problems += env_rules(path, container)
        problems += resource_rules(path, container)
    grace = int_value(pod_spec.get("terminationGracePeriodSeconds"))
    if grace is not None and grace < 0:
        problems.append(("terminationGracePeriodSeconds", f"{grace} must be >= 0"))
    return problems


def metadata_rules(body: dict[str, Any], namespaced: bool) -> Found:
    problems = []
    name = get(body, "metadata", "name")
    if not isinstance(name, str) or not DNS_SUBDOMAIN_RE.match(name) or len(name) > 253:
        problems.append(("metadata.name", f"{name!r} is not a DNS subdomain name"))
    namespace = get(body, "metadata", "namespace")
    if namespace is not None and (not namespaced or not DNS_LABEL_RE.match(str(namespace))):
        message = f"{namespace!r} is not valid here" if namespaced else "cluster-scoped resources take no namespace"
        problems.append(("metadata.namespace", message))
    label_maps = [("metadata", "labels"), ("spec", "template", "metadata", "labels"), ("spec", "selector", "matchLabels")]
    if body.get("kind") == "Service":
        label_maps = [("metadata", "labels"), ("spec", "selector")]
    for where in label_maps:
        for key, value in as_dict(get(body, *where)).items():
            if not qualified_name(str(key)):
                problems.append((".".join(where), f"label key {key!r} is not a qualified name"))
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE_RE.match(value):
                problems.append((f"{'.'.join(where)}.{key}", f"label value {value!r} is not valid"))
    return problems


def storage_class_rules(body: dict[str, Any]) -> Found:
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
