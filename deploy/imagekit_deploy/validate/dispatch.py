"""Every layer for every resource: which schema and which rules apply to each manifest, and
which layers could not run (no Kruise CRD given, a schema package missing) and why."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from imagekit_core.errors import EnvironmentMissing

from ..monitoring import PODMONITOR_KIND
from ..renderer import KRUISE_API_VERSION, Manifest, Rendering
from ..schemas import DEFAULT_KUBERNETES_VERSION, KRUISE_CRD_HINT, KruiseSchema, KubernetesSchemas, require_jsonschema
from .api_rules import claim_rules, metadata_rules, statefulset_api_rules, storage_class_rules
from .fields import as_dict, as_list, get
from .imagekit_rules import imagekit_rules, pipeline_container
from .monitoring_rules import pod_monitor_rules
from .report import (
    CHECK_API,
    CHECK_IMAGEKIT,
    CHECK_KRUISE_CRD,
    CHECK_WEBHOOK,
    ManifestsInvalid,
    Problem,
    ValidationReport,
    kubernetes_check,
)
from .webhook_rules import kruise_webhook_rules

CLUSTER_SCOPED = {"StorageClass", "Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}


def _definition_for(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    package = group.split(".")[0] if group else "core"
    return f"io.k8s.api.{package}.{version}.{kind}"


def _kubernetes_schemas(version: str, report: ValidationReport) -> tuple[KubernetesSchemas | None, str | None]:
    """The schemas of `version`, or None and the package that is missing (an unknown version is bad input)."""
    try:
        schemas = KubernetesSchemas(version)
        require_jsonschema()
    except EnvironmentMissing as missing:
        report.not_checked[kubernetes_check(version)] = str(missing)
        return None, str(missing)
    report.kubernetes_version = schemas.version
    return schemas, None


class _Validation:
    """The report of one rendering, filled in manifest by manifest."""

    def __init__(self, rendering: Rendering, kubernetes_version: str, kruise: KruiseSchema | None) -> None:
        self.rendering = rendering
        self.report = ValidationReport(kubernetes_version=kubernetes_version)
        self.kubernetes, missing = _kubernetes_schemas(kubernetes_version, self.report)
        self.kruise = kruise
        self.kruise_skipped = KRUISE_CRD_HINT if kruise is None else missing  # why the CRD check cannot run
        self.schema_check = kubernetes_check(self.report.kubernetes_version)

    def add(self, manifest: Manifest, found: Iterable[Any], check: str) -> None:
        resource = f"{manifest.kind or '?'}/{manifest.name or '?'}"
        for item in found:
            path, message = (item.path, item.message) if hasattr(item, "path") else item
            self.report.problems.append(Problem(manifest.filename, resource, path, message, check))

    def kruise_schemas(self, manifest: Manifest) -> list[str]:
        """The CRD for the Advanced StatefulSet itself; the Kubernetes schemas for what it embeds."""
        assert self.kubernetes is not None
        body, checks = manifest.body, [self.schema_check]
        if self.kruise is not None:
            self.add(manifest, self.kruise.errors(body), CHECK_KRUISE_CRD)
            self.report.kruise_crd = f"{self.kruise.path} ({self.kruise.source})"
            checks.insert(0, CHECK_KRUISE_CRD)
        embedded: list[tuple[Any, str, tuple[Any, ...]]] = [
            (get(body, "metadata", default={}), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", ("metadata",)),
            (get(body, "spec", "template", default={}), "io.k8s.api.core.v1.PodTemplateSpec", ("spec", "template")),
        ]
        embedded += [(claim, "io.k8s.api.core.v1.PersistentVolumeClaim", ("spec", "volumeClaimTemplates", index))
                     for index, claim in enumerate(as_list(get(body, "spec", "volumeClaimTemplates")))]
        for instance, definition, prefix in embedded:
            self.add(manifest, self.kubernetes.errors(instance, definition, prefix), self.schema_check)
        return checks

    def core_schemas(self, manifest: Manifest) -> list[str]:
        assert self.kubernetes is not None
        definition = _definition_for(manifest.api_version, manifest.kind)
        if not self.kubernetes.has(definition):
            self.add(manifest, [("(root)", f"no Kubernetes {self.report.kubernetes_version} schema for "
                                 f"{manifest.api_version} {manifest.kind}")], self.schema_check)
            return []
        self.add(manifest, self.kubernetes.errors(manifest.body, definition), self.schema_check)
        return [self.schema_check]

    def rules(self, manifest: Manifest, is_kruise: bool) -> list[str]:
        body, checks = manifest.body, [CHECK_API]
        self.add(manifest, metadata_rules(body, manifest.kind not in CLUSTER_SCOPED), CHECK_API)
        if manifest.kind == "StatefulSet":
            self.add(manifest, statefulset_api_rules(body, apps_v1=not is_kruise), CHECK_API)
            if is_kruise:
                self.add(manifest, kruise_webhook_rules(body), CHECK_WEBHOOK)
                checks.append(CHECK_WEBHOOK)
            self.add(manifest, imagekit_rules(body, self.rendering), CHECK_IMAGEKIT)
            checks.append(CHECK_IMAGEKIT)
        elif manifest.kind == "StorageClass":
            self.add(manifest, storage_class_rules(body), CHECK_API)
        elif manifest.kind == "PersistentVolumeClaim":
            self.add(manifest, claim_rules(body), CHECK_API)
        elif manifest.kind == PODMONITOR_KIND:  # a CRD without a schema here: imagekit's rules check its shape
            found = pipeline_container(as_dict(get(self.rendering.pod_template(), "spec")))
            self.add(manifest, pod_monitor_rules(body, self.rendering, found[1] if found else None), CHECK_IMAGEKIT)
            checks.append(CHECK_IMAGEKIT)
        return checks

    def manifest(self, manifest: Manifest) -> None:
        if not manifest.api_version or not manifest.kind:
            self.add(manifest, [("(root)", "apiVersion and kind are required")], CHECK_API)
            return
        is_kruise = manifest.api_version == KRUISE_API_VERSION and manifest.kind == "StatefulSet"
        checks: list[str] = []
        if is_kruise and self.kruise_skipped:
            self.report.not_checked[CHECK_KRUISE_CRD] = self.kruise_skipped
        if self.kubernetes is not None and manifest.kind != PODMONITOR_KIND:
            checks += self.kruise_schemas(manifest) if is_kruise else self.core_schemas(manifest)
        checks += self.rules(manifest, is_kruise)
        resource = f"{manifest.kind or '?'}/{manifest.name or '?'}"
        self.report.checked.append({"file": manifest.filename, "resource": resource, "checks": checks})


def validate_rendering(
    rendering: Rendering,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    kruise: KruiseSchema | None = None,
) -> ValidationReport:
    """Every problem of every layer that can run; `report.not_checked` names the others.
    No problems means a cluster (with Kruise, for that flavor) accepts the manifests."""
    validation = _Validation(rendering, kubernetes_version, kruise)
    workloads = [m for m in rendering.manifests if m.kind == "StatefulSet"]
    if len(workloads) != 1:
        validation.report.problems.append(
            Problem("-", "-", "-", f"expected exactly one StatefulSet, found {len(workloads)}", CHECK_IMAGEKIT))
    for manifest in rendering.manifests:
        validation.manifest(manifest)
    return validation.report


def check_rendering(rendering: Rendering, **options: Any) -> ValidationReport:
    """validate_rendering, raising ManifestsInvalid (exit 2) on any problem."""
    report = validate_rendering(rendering, **options)
    if report.problems:
        raise ManifestsInvalid(report.problems)
    return report
