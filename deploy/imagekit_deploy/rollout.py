"""How a rendering's pods are rolled to a new template by `imagekit pod`: revisions, in place or not.

Pure decisions, no engine (emulator/apply.py carries them out). The local runner keeps only what debugging
a shard needs (docs/deploy.md, "What `imagekit pod` is for"):
  - a pod template has a revision (the hash of `spec.template`, as a ControllerRevision names it);
  - OpenKruise with podUpdatePolicy InPlaceIfPossible (or InPlaceOnly) updates a pod in place when the
    templates differ only in container images, env values and pod labels/annotations: the container is
    made again with the new image in the same pod, so shm, the SSD and the PV stay;
  - any other change, podUpdatePolicy ReCreate, or a plain apps/v1 StatefulSet: the pod is deleted and
    created again from the new template (shm lost; the SSD and the PV stay, as their claims do);
  - pods are rolled one at a time, highest ordinal first.
The rest of the update strategy (partition, paused, maxUnavailable, minReadySeconds, the in-place grace
period, InPlaceOnly's refusal) is the real controllers' business, tested on the local cluster; `not_emulated`
names what a rendering sets of it, so `pod apply` can say it was not honoured.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from imagekit_runtime.observe.journal import RunView

KRUISE_API_GROUP = "apps.kruise.io"
IN_PLACE_IF_POSSIBLE = "InPlaceIfPossible"
IN_PLACE_ONLY = "InPlaceOnly"


class Action(StrEnum):
    """What `pod up` / `pod apply` did to one pod (the `action` of its report)."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    IN_PLACE = "updated in place"
    RECREATED = "recreated"


class UpdateKind(StrEnum):
    IN_PLACE = "in-place"
    RECREATE = "recreate"


def template_revision(workload: dict[str, Any]) -> str:
    """The pod template's revision: a short hash of `spec.template`, stable across renderings of it."""
    template = (workload.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return digest[:10]


def in_place_policy(workload: dict[str, Any]) -> bool:
    """Whether the workload's controller updates pods in place when it can (Kruise InPlaceIfPossible/Only)."""
    if not str(workload.get("apiVersion", "")).startswith(KRUISE_API_GROUP + "/"):
        return False
    rolling = (((workload.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {})
    return rolling.get("podUpdatePolicy", "ReCreate") in (IN_PLACE_IF_POSSIBLE, IN_PLACE_ONLY)


# What the local runner does not do, with the value at which not doing it changes nothing.
_NOT_EMULATED = (("partition", 0), ("paused", False), ("maxUnavailable", 1), ("minReadySeconds", 0))


def not_emulated(workload: dict[str, Any]) -> list[str]:
    """The update-strategy fields a rendering sets that `imagekit pod` does not honour (the cluster does)."""
    spec = workload.get("spec") or {}
    rolling = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
    found = [f"{key}: {rolling[key]}" for key, neutral in _NOT_EMULATED
             if key in rolling and rolling[key] not in (neutral, None)]
    grace = (rolling.get("inPlaceUpdateStrategy") or {}).get("gracePeriodSeconds")
    if grace:
        found.append(f"inPlaceUpdateStrategy.gracePeriodSeconds: {grace}")
    if rolling.get("podUpdatePolicy") == IN_PLACE_ONLY:
        found.append(f"podUpdatePolicy: {IN_PLACE_ONLY} (treated as {IN_PLACE_IF_POSSIBLE})")
    return found


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


def decide(old: dict[str, Any], new: dict[str, Any]) -> Action:
    """What `imagekit pod` does to a running pod of template `old` now that the set's template is `new`."""
    if template_revision(old) == template_revision(new):
        return Action.UNCHANGED
    if in_place_policy(new) and in_place_possible(old, new):
        return Action.IN_PLACE
    return Action.RECREATED


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
    if not in_place_policy(new):
        kind = "a plain StatefulSet" if not str(new.get("apiVersion", "")).startswith(KRUISE_API_GROUP) \
            else "podUpdatePolicy ReCreate"
        return f"{kind} recreates its pods on every template change"
    changes = template_changes(old, new)
    if not changes:
        return None
    return f"the template changes more than container images and env values: {', '.join(changes)}"
