"""Reading manifests that may be malformed: lookups that never raise, and the name grammars
the API server checks. Every rule module reads fields through these."""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Any

from imagekit_core.spec.quantity import QuantityError, parse_quantity

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
PERCENT_RE = re.compile(r"^(\d+)%$")

# What a rule found: (dotted field path, message).
Found = list[tuple[str, str]]


def get(data: Any, *keys: str, default: Any = None) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def int_value(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def quantity_or_none(value: Any) -> Fraction | None:
    """A Kubernetes quantity as a number, or None where the API server would refuse it."""
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def selector_matches(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in as_list(selector.get("matchExpressions")):
        key, operator = get(expression, "key"), get(expression, "operator")
        values = as_list(get(expression, "values"))
        refused = ((operator == "In" and labels.get(key) not in values)
                   or (operator == "NotIn" and key in labels and labels[key] in values)
                   or (operator == "Exists" and key not in labels)
                   or (operator == "DoesNotExist" and key in labels))
        if refused:
            return False
    return True


def all_containers(pod_spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for group in ("initContainers", "containers"):
        for index, container in enumerate(as_list(pod_spec.get(group))):
            if isinstance(container, dict):
                found.append((f"{group}[{index}]", container))
    return found


def env_entry(container: dict[str, Any], name: str) -> dict[str, Any] | None:
    for entry in as_list(container.get("env")):
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return None


def under(path: str, top: str) -> bool:
    child, parent = PurePosixPath(path), PurePosixPath(top)
    return child == parent or parent in child.parents


def qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (not DNS_SUBDOMAIN_RE.match(prefix) or len(prefix) > 253):
        return False
    return bool(LABEL_NAME_RE.match(name)) and len(name) <= 63
