"""The real schemas manifests are checked against, loaded once.

- Kubernetes: the OpenAPI-derived JSON schemas shipped by the `kubernetes-validate`
  package (its "strict" set, which rejects unknown fields as
  `kubectl apply --validate=strict` does), for one Kubernetes version.
- OpenKruise: the Advanced StatefulSet CRD's `openAPIV3Schema`, an input: the file given
  as `--kruise-crd FILE` or $IMAGEKIT_KRUISE_CRD (the statefulsets.apps.kruise.io CRD,
  `config/crd/bases/apps.kruise.io_statefulsets.yaml` in openkruise/kruise). Without it
  that one check does not run, and the report says so. The CRD leaves the pod template
  and claim templates schemaless, so those go through the Kubernetes schemas.

jsonschema and kubernetes-validate are imported here only, lazily: rendering works
without them, and validation reports the schema checks as not run, naming the package.
"""
from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imagekit_core import contract
from imagekit_core.errors import EnvironmentMissing, UsageError

DEFAULT_KUBERNETES_VERSION = "1.28"  # first release whose StatefulSet controller sets apps.kubernetes.io/pod-index
KRUISE_CRD_OPTION = "--kruise-crd"
KRUISE_CRD_ENV = contract.KRUISE_CRD
KRUISE_CRD_HINT = f"give {KRUISE_CRD_OPTION} FILE or {KRUISE_CRD_ENV}"
KRUISE_CRD_FIX = ("fix: give the statefulsets.apps.kruise.io CRD, "
                  "config/crd/bases/apps.kruise.io_statefulsets.yaml of github.com/openkruise/kruise")
KRUISE_CRD_GROUP = "apps.kruise.io"
KRUISE_CRD_VERSION = "v1beta1"
DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
MAX_MESSAGE = 200

# Schema keywords whose value is a mapping of name -> schema, or a schema, or a list of schemas.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


@dataclass(frozen=True)
class SchemaError:
    path: str  # dotted field path, e.g. spec.template.spec.containers[0].image
    message: str


def require_jsonschema() -> Any:
    try:
        import jsonschema
        import referencing  # noqa: F401
    except ImportError:
        raise EnvironmentMissing("manifest validation needs jsonschema (fix: pip install jsonschema kubernetes-validate)") from None
    return jsonschema


def field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _short(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 1] + "…"


def _iter_errors(validator: Any, instance: Any, prefix: tuple[Any, ...]) -> Iterator[SchemaError]:
    from jsonschema.exceptions import best_match

    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        # oneOf/anyOf failures carry the real reason one level down.
        detail = best_match(error.context) if error.context else error
        yield SchemaError(field_path(prefix + tuple(detail.absolute_path)), _short(detail.message))


def strict(schema: Any) -> Any:
    """Reject unknown fields, as the API server's strict field validation does, except
    where the schema itself preserves unknown fields."""
    if not isinstance(schema, dict):
        return schema
    result = dict(schema)
    for key in _SCHEMA_MAPS:
        if isinstance(result.get(key), dict):
            result[key] = {name: strict(sub) for name, sub in result[key].items()}
    for key in _SCHEMA_VALUES:
        if isinstance(result.get(key), dict):
            result[key] = strict(result[key])
    for key in _SCHEMA_LISTS:
        if isinstance(result.get(key), list):
            result[key] = [strict(sub) for sub in result[key]]
    if ("properties" in result and "additionalProperties" not in result
            and not result.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    return result


class KubernetesSchemas:
    """The core Kubernetes schemas of one version, by definition name."""

    def __init__(self, version: str = DEFAULT_KUBERNETES_VERSION) -> None:
        self.version, self._definitions = _load_definitions(version)
        self._validators: dict[str, Any] = {}

    def has(self, definition: str) -> bool:
        return definition in self._definitions["$defs"]

    def errors(self, instance: Any, definition: str, prefix: tuple[Any, ...] = ()) -> list[SchemaError]:
        validator = self._validators.get(definition)
        if validator is None:
            jsonschema = require_jsonschema()
            from referencing import Registry, Resource

            registry = Registry().with_resource(DEFINITIONS_ID, Resource.from_contents(self._definitions))
            schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                      "$ref": f"{DEFINITIONS_ID}#/$defs/{definition}"}
            validator = jsonschema.Draft202012Validator(schema, registry=registry)
            self._validators[definition] = validator
        return list(_iter_errors(validator, instance, prefix))


def available_kubernetes_versions() -> list[str]:
    root = _schema_root()
    versions = {entry.name[1:].split("-")[0] for entry in root.iterdir() if entry.name.endswith("-local-strict")}
    return sorted((".".join(v.split(".")[:2]) for v in versions), key=lambda v: tuple(int(p) for p in v.split(".")))


def _schema_root() -> Any:
    try:
        from importlib.resources import files

        return files("kubernetes_validate") / "kubernetes-json-schema"
    except ModuleNotFoundError:
        raise EnvironmentMissing("manifest validation needs kubernetes-validate (fix: pip install kubernetes-validate)") from None


@functools.lru_cache(maxsize=4)
def _load_definitions(version: str) -> tuple[str, dict[str, Any]]:
    wanted = version.lstrip("v")
    major_minor = ".".join(wanted.split(".")[:2])
    available = available_kubernetes_versions()
    if major_minor not in available:
        raise UsageError(f"Kubernetes {version} has no schemas in kubernetes-validate "
                         f"(fix: pick one of {', '.join(available)})")
    path = _schema_root() / f"v{major_minor}.0-local-strict" / "_definitions.json"
    return major_minor, json.loads(path.read_text())


class KruiseSchema:
    """The Advanced StatefulSet's openAPIV3Schema from the OpenKruise CRD file at `path`.

    A file that is missing or is not that CRD is bad input (UsageError, exit 2) naming
    `given_as`, the flag or variable it came from."""

    def __init__(self, path: Path, given_as: str = KRUISE_CRD_OPTION) -> None:
        self.path = path
        self.given_as = given_as
        self.source = _crd_source(path)
        _kruise_schema(str(path), given_as)

    def errors(self, instance: Any) -> list[SchemaError]:
        return list(_iter_errors(_kruise_validator(str(self.path), self.given_as), instance, ()))


def kruise_schema(option: Path | None, environ: Mapping[str, str] = os.environ) -> KruiseSchema | None:
    """The CRD given as --kruise-crd, else as $IMAGEKIT_KRUISE_CRD, else None (that check is not run)."""
    if option is not None:
        return KruiseSchema(option, KRUISE_CRD_OPTION)
    from_env = environ.get(KRUISE_CRD_ENV)
    return KruiseSchema(Path(from_env), KRUISE_CRD_ENV) if from_env else None


def _crd_source(path: Path) -> str:
    """`commit` of SOURCE.txt beside the CRD, to report which Kruise the check used."""
    source = path.parent / "SOURCE.txt"
    if source.is_file():
        for line in source.read_text().splitlines():
            if line.startswith("commit:"):
                return f"openkruise/kruise@{line.split(':', 1)[1].strip()[:12]}"
    return "unknown revision"


def _crd_problem(crd: Any) -> str | None:
    if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
        return "is not a CustomResourceDefinition"
    found = crd.get("spec")
    spec: dict[str, Any] = found if isinstance(found, dict) else {}
    names = spec.get("names")
    kind = names.get("kind") if isinstance(names, dict) else None
    if spec.get("group") != KRUISE_CRD_GROUP or kind != "StatefulSet":
        return f"defines {kind!r} of group {spec.get('group')!r}, not StatefulSet of {KRUISE_CRD_GROUP}"
    return None


@functools.lru_cache(maxsize=4)
def _kruise_schema(crd_path: str, given_as: str) -> dict[str, Any]:
    path = Path(crd_path)
    if not path.is_file():
        raise UsageError(f"{given_as} {path}: no such file ({KRUISE_CRD_FIX})")
    try:
        crd = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        raise UsageError(f"{given_as} {path}: not YAML ({KRUISE_CRD_FIX})") from None
    problem = _crd_problem(crd)
    if problem:
        raise UsageError(f"{given_as} {path}: {problem} ({KRUISE_CRD_FIX})")
    versions = {v.get("name"): v for v in crd["spec"].get("versions") or [] if isinstance(v, dict)}
    version = versions.get(KRUISE_CRD_VERSION)
    found = version.get("schema") if isinstance(version, dict) else None
    schema = found.get("openAPIV3Schema") if isinstance(found, dict) else None
    if not isinstance(schema, dict):
        raise UsageError(f"{given_as} {path}: has no {KRUISE_CRD_VERSION} openAPIV3Schema ({KRUISE_CRD_FIX})")
    checked: dict[str, Any] = strict(copy.deepcopy(schema))
    # The CRD types metadata as a bare object; the API server checks it as ObjectMeta,
    # which the Kubernetes schemas do separately.
    checked.setdefault("properties", {})["metadata"] = {"type": "object"}
    return checked


@functools.lru_cache(maxsize=4)
def _kruise_validator(crd_path: str, given_as: str) -> Any:
    return require_jsonschema().Draft7Validator(_kruise_schema(crd_path, given_as))
