"""How the set's controller rolls pods to a new template: revisions, the update strategy, in place or not.

Pure decisions, no engine (apply.py carries them out). As the controllers do it:
  - a pod template has a revision (the hash of `spec.template`, as a ControllerRevision names it);
  - pods whose ordinal is at or above `rollingUpdate.partition` are updated, from the highest ordinal
    down, at most `maxUnavailable` at a time (Kruise: a number or a percentage of replicas, rounded
    down, at least 1; more than 1 only with podManagementPolicy Parallel); `paused` updates none;
  - OpenKruise with podUpdatePolicy InPlaceIfPossible (or InPlaceOnly) updates a pod in place when the
    templates differ only in container images, env values and pod labels/annotations: the container is
    made again with the new image in the same pod, so shm, the SSD and the PV stay;
    `inPlaceUpdateStrategy.gracePeriodSeconds` is the wait between marking the pod not ready
    (InPlaceUpdateReady false) and swapping the image;
  - any other change, podUpdatePolicy ReCreate, or a plain apps/v1 StatefulSet: the pod is deleted and
    created again from the new template (shm lost; the SSD and the PV stay, as their claims do).
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from imagekit_runtime.errors import UsageError
from imagekit_runtime.journal import RunView

KRUISE_API_GROUP = "apps.kruise.io"
IN_PLACE_IF_POSSIBLE = "InPlaceIfPossible"
IN_PLACE_ONLY = "InPlaceOnly"


class Action(StrEnum):
    """What `pod up` / `pod apply` did to one pod (the `action` of its report)."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    IN_PLACE = "updated in place"
    RECREATED = "recreated"
    HELD = "held by partition"
    PAUSED = "paused"


class UpdateKind(StrEnum):
    IN_PLACE = "in-place"
    RECREATE = "recreate"


def template_revision(workload: dict[str, Any]) -> str:
    """The pod template's revision: a short hash of `spec.template`, stable across renderings of it."""
    template = (workload.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return digest[:10]


@dataclass(frozen=True)
class Strategy:
    in_place: bool          # Kruise InPlaceIfPossible or InPlaceOnly
    in_place_only: bool
    partition: int
    max_unavailable: int
    grace_seconds: int      # inPlaceUpdateStrategy.gracePeriodSeconds
    min_ready_seconds: int
    paused: bool


def _scaled(value: Any, replicas: int, where: str) -> int:
    if isinstance(value, int):
        return max(1, value)
    match = re.fullmatch(r"(\d+)%", str(value).strip())
    if match is None:
        raise UsageError(f"{where}: {value!r} is neither a number nor a percentage (fix: re-render)")
    return max(1, replicas * int(match.group(1)) // 100)


def update_strategy(workload: dict[str, Any], replicas: int) -> Strategy:
    spec = workload.get("spec") or {}
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    kruise = str(workload.get("apiVersion", "")).startswith(KRUISE_API_GROUP + "/")
    policy = rolling.get("podUpdatePolicy", "ReCreate") if kruise else "ReCreate"
    parallel = spec.get("podManagementPolicy") == "Parallel"
    where = "spec.updateStrategy.rollingUpdate.maxUnavailable"
    max_unavailable = _scaled(rolling.get("maxUnavailable", 1), replicas, where) if parallel or not kruise else 1
    in_place = (rolling.get("inPlaceUpdateStrategy") or {}) if kruise else {}
    return Strategy(in_place=policy in (IN_PLACE_IF_POSSIBLE, IN_PLACE_ONLY), in_place_only=policy == IN_PLACE_ONLY,
                    partition=int(rolling.get("partition") or 0), max_unavailable=max_unavailable,
                    grace_seconds=int(in_place.get("gracePeriodSeconds") or 0),
                    min_ready_seconds=int(rolling.get("minReadySeconds") or spec.get("minReadySeconds") or 0),
                    paused=bool(rolling.get("paused")) if kruise else False)


def _without_in_place_fields(template: dict[str, Any]) -> dict[str, Any]:
    """The template with what an in-place update may change blanked out."""
    blank = copy.deepcopy(template)
    meta = blank.get("metadata") or {}
    meta.pop("labels", None)
    meta.pop("annotations", None)
    for container in (blank.get("spec") or {}).get("containers") or []:
        container["image"] = ""
        for entry in container.get("env") or []:
            if "value" in entry:
                entry["value"] = ""
    return blank


def in_place_possible(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two workloads' pod templates differ only in what an in-place update changes."""
    old_template = (old.get("spec") or {}).get("template") or {}
    new_template = (new.get("spec") or {}).get("template") or {}
    return _without_in_place_fields(old_template) == _without_in_place_fields(new_template)


def decide(strategy: Strategy, ordinal: int, old: dict[str, Any], new: dict[str, Any]) -> Action:
    """What the controller does to a running pod of template `old` now that the set's template is `new`."""
    if template_revision(old) == template_revision(new):
        return Action.UNCHANGED
    if ordinal < strategy.partition:
        return Action.HELD
    if strategy.paused:
        return Action.PAUSED
    if strategy.in_place and in_place_possible(old, new):
        return Action.IN_PLACE
    return Action.RECREATED


def check_allowed(strategy: Strategy, old: dict[str, Any], new: dict[str, Any], set_name: str) -> None:
    """InPlaceOnly refuses a template change that cannot be made in place (Kruise's webhook does)."""
    if strategy.in_place_only and not in_place_possible(old, new):
        raise UsageError(f"StatefulSet {set_name}: podUpdatePolicy InPlaceOnly, but the new template changes more "
                         f"than images and env values (fix: render with InPlaceIfPossible, or `imagekit pod down` "
                         f"and up again)")


def update_order(ordinals: list[int]) -> list[int]:
    """Ordinals in the order the controller updates them: the highest first."""
    return sorted(ordinals, reverse=True)


@dataclass
class PodUpdate:
    """The last update of one pod, kept in the state directory (SetState.updates)."""

    kind: str                   # UpdateKind
    from_revision: str
    to_revision: str
    started_at: float           # the pod marked not ready
    swapped_at: float | None = None  # the new container (in place) or pod (recreate) about to start
    ready_at: float | None = None    # its runtime seen running

    def runtime_started(self, run: RunView) -> bool:
        """Whether the newest run in the pod's journal is the new runtime's (started after the swap)."""
        return self.swapped_at is not None and run.started_at is not None and run.started_at >= self.swapped_at

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PodUpdate | None:
        return cls(**data) if data else None


def template_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> list[str]:
    """Where two workloads' pod templates differ beyond what an in-place update changes (dotted paths)."""
    found: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(found) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{path}[{index}]")
        else:
            found.append(path)

    walk(_without_in_place_fields((old.get("spec") or {}).get("template") or {}),
         _without_in_place_fields((new.get("spec") or {}).get("template") or {}), "spec.template")
    return found


def why_recreated(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """None when the controller updates running pods in place (or nothing changed); else why it recreates them."""
    if template_revision(old) == template_revision(new):
        return None
    strategy = update_strategy(new, 1)
    if not strategy.in_place:
        kind = "a plain StatefulSet" if not str(new.get("apiVersion", "")).startswith(KRUISE_API_GROUP) \
            else "podUpdatePolicy ReCreate"
        return f"{kind} recreates its pods on every template change"
    changes = template_changes(old, new)
    if not changes:
        return None
    return f"the template changes more than container images and env values: {', '.join(changes)}"
