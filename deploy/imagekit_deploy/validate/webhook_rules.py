"""What Kruise's validating webhook refuses in an Advanced StatefulSet beyond its CRD schema
(pkg/webhook/statefulset/validating in openkruise/kruise). The rules see the object after
Kruise's mutating webhook filled in its defaults, as the real webhook does."""
from __future__ import annotations

import copy
from typing import Any

from ..ordinals import reserved_ordinals
from ..pod import IN_PLACE_READINESS_GATE
from .fields import PERCENT_RE, Found, as_dict, as_list, get, int_value

PARALLEL = "Parallel"
ORDERED_READY = "OrderedReady"
IN_PLACE_POLICIES = ("InPlaceIfPossible", "InPlaceOnly")
POD_UPDATE_POLICIES = ("ReCreate", *IN_PLACE_POLICIES)
RETENTION_POLICIES = ("Retain", "Delete")
MAX_MIN_READY_SECONDS = 300


def kruise_defaults(statefulset: dict[str, Any]) -> dict[str, Any]:
    """The fields Kruise's mutating webhook fills in before validation (SetDefaultsStatefulSet)."""
    result = copy.deepcopy(statefulset)
    spec = result.setdefault("spec", {})
    if not isinstance(spec, dict):
        return result
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", ORDERED_READY)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        rolling = strategy.setdefault("rollingUpdate", {}) if strategy["type"] == "RollingUpdate" else None
        if isinstance(rolling, dict):
            for key, value in (("partition", 0), ("maxUnavailable", 1), ("podUpdatePolicy", "ReCreate"),
                               ("minReadySeconds", 0)):
                rolling.setdefault(key, value)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    return result


def max_unavailable_problems(value: Any, pod_management_policy: str, path: str) -> Found:
    """Kruise's validateMaxUnavailableField."""
    problems = []
    number = int_value(value)
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


def rolling_update_problems(spec: dict[str, Any], rolling: dict[str, Any]) -> Found:
    base = "spec.updateStrategy.rollingUpdate"
    policy = spec.get("podManagementPolicy")
    problems: Found = []
    partition = int_value(rolling.get("partition"))
    if partition is not None and partition < 0:
        problems.append((f"{base}.partition", f"{partition} must be >= 0"))
    min_ready = int_value(rolling.get("minReadySeconds"))
    if min_ready is not None and not 0 <= min_ready <= MAX_MIN_READY_SECONDS:
        problems.append((f"{base}.minReadySeconds", f"{min_ready} must be from 0 to {MAX_MIN_READY_SECONDS}"))
    problems += max_unavailable_problems(rolling.get("maxUnavailable"), str(policy), f"{base}.maxUnavailable")
    update_policy = rolling.get("podUpdatePolicy")
    if update_policy not in POD_UPDATE_POLICIES:
        problems.append((f"{base}.podUpdatePolicy", f"{update_policy!r} must be one of {', '.join(POD_UPDATE_POLICIES)}"))
    elif update_policy in IN_PLACE_POLICIES:
        gates = [get(gate, "conditionType") for gate in as_list(get(spec, "template", "spec", "readinessGates"))]
        if IN_PLACE_READINESS_GATE not in gates:
            problems.append(("spec.template.spec.readinessGates",
                             f"must contain {IN_PLACE_READINESS_GATE} when podUpdatePolicy is {update_policy}"))
    if rolling.get("unorderedUpdate") is not None and policy != PARALLEL:
        problems.append((f"{base}.unorderedUpdate", "only works with podManagementPolicy Parallel"))
    return problems


def update_strategy_problems(spec: dict[str, Any]) -> Found:
    strategy = as_dict(spec.get("updateStrategy"))
    strategy_type = strategy.get("type")
    if strategy_type == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            return [("spec.updateStrategy.rollingUpdate", "only allowed for updateStrategy RollingUpdate")]
        return []
    if strategy_type == "RollingUpdate":
        return rolling_update_problems(spec, as_dict(strategy.get("rollingUpdate")))
    return [("spec.updateStrategy.type", f"{strategy_type!r} must be RollingUpdate or OnDelete")]


def kruise_webhook_rules(statefulset: dict[str, Any]) -> Found:
    spec = as_dict(kruise_defaults(statefulset).get("spec"))
    problems: Found = []
    policy = spec.get("podManagementPolicy")
    if policy not in (ORDERED_READY, PARALLEL):
        problems.append(("spec.podManagementPolicy", f"{policy!r} must be {ORDERED_READY} or {PARALLEL}"))
    problems += [(problem.path, problem.message) for problem in reserved_ordinals(spec.get("reserveOrdinals")).problems]
    scale_max = get(spec, "scaleStrategy", "maxUnavailable")
    if scale_max is not None:
        problems += max_unavailable_problems(scale_max, str(policy), "spec.scaleStrategy.maxUnavailable")
    problems += update_strategy_problems(spec)
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):  # else the schema reports it
        problems += [(f"spec.persistentVolumeClaimRetentionPolicy.{key}", f"{retention.get(key)!r} must be Retain or Delete")
                     for key in ("whenDeleted", "whenScaled") if retention.get(key) not in RETENTION_POLICIES]
    replicas = int_value(spec.get("replicas"))
    if replicas is not None and replicas < 0:
        problems.append(("spec.replicas", f"{replicas} must be >= 0"))
    return problems
