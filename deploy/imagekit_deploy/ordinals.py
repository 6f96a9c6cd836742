"""Pod ordinals of a StatefulSet, and Kruise's `reserveOrdinals`, read in one place.

`reserveOrdinals` is a list of int-or-string (`x-kubernetes-int-or-string`). Kruise's
webhook accepts exactly: a non-negative integer, or a string `"a-b"` (digits, a dash,
digits) with a <= b, which reserves a..b. A string of digits alone (`"3"`) matches no
range and is refused, as is anything else. Ordinals are shards, so which pods exist
decides which shards run: the validator and the pod emulator both ask here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RANGE_RE = re.compile(r"^([0-9]+)-([0-9]+)$")


@dataclass(frozen=True)
class OrdinalProblem:
    index: int
    message: str

    @property
    def path(self) -> str:
        return f"spec.reserveOrdinals[{self.index}]"


@dataclass(frozen=True)
class ReservedOrdinals:
    ordinals: frozenset[int]
    problems: tuple[OrdinalProblem, ...]


def _entry(entry: Any) -> range | str:
    """The ordinals one entry reserves, or why Kruise refuses it."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        return range(entry, entry + 1) if entry >= 0 else f"{entry} is negative"
    match = RANGE_RE.match(entry) if isinstance(entry, str) else None
    if match is None:
        return f"{entry!r} is not an ordinal (a non-negative integer) or a range such as '3-5'"
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        return f"range {entry!r} starts after it ends"
    return range(low, high + 1)


def reserved_ordinals(entries: Any) -> ReservedOrdinals:
    """The ordinals a `reserveOrdinals` value reserves, and a problem per entry Kruise refuses."""
    ordinals: set[int] = set()
    problems: list[OrdinalProblem] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        found = _entry(entry)
        if isinstance(found, str):
            problems.append(OrdinalProblem(index, found))
        else:
            ordinals.update(found)
    return ReservedOrdinals(frozenset(ordinals), tuple(problems))


def pod_ordinals(replicas: int, reserved: frozenset[int] = frozenset(), start: int = 0) -> list[int]:
    """The ordinals the controller keeps pods at: the first `replicas` from `start` not reserved."""
    ordinals: list[int] = []
    candidate = start
    while len(ordinals) < max(replicas, 0):
        if candidate not in reserved:
            ordinals.append(candidate)
        candidate += 1
    return ordinals
