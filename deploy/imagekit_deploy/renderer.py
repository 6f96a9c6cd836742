"""The renderer contract: a pipeline spec plus deploy settings in, Kubernetes resources out.

One implementation per flavour (`kruise.py`, `statefulset.py`), both built on the
pod of `pod.py`. A `Rendering` is plain data: the writer turns it into files and
`load_rendered` turns files back into one, so `deploy validate` and the local pod
emulator read exactly what `kubectl apply -k` would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from imagekit_runtime.errors import UsageError
from imagekit_runtime.spec import PipelineSpec

from .monitoring import pod_monitor
from .pod import PodPlan, metadata, selector_labels
from .settings import DeploySettings, Flavor

WORKLOAD_KIND = "StatefulSet"


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes resource and the file it lives in."""

    filename: str
    body: dict[str, Any]

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        meta = self.body.get("metadata")
        return str(meta.get("name", "")) if isinstance(meta, dict) else ""


@dataclass(frozen=True)
class Rendering:
    """The resources of one deployment, in apply order."""

    flavor: str
    manifests: tuple[Manifest, ...]

    def workload(self) -> Manifest:
        for manifest in self.manifests:
            if manifest.kind == WORKLOAD_KIND:
                return manifest
        raise UsageError("the rendered resources hold no StatefulSet (fix: re-run `imagekit deploy render`)")

    def pod_template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.workload().body["spec"]["template"]
        return template


class Renderer(Protocol):
    """One deployment flavour."""

    flavor: Flavor

    def render(self, spec: PipelineSpec, settings: DeploySettings) -> Rendering: ...


def statefulset(api_version: str, spec: PipelineSpec, settings: DeploySettings, pod: PodPlan,
                strategy: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet both flavours share; `strategy` holds what differs (update strategy, reserveOrdinals)."""
    workload_spec: dict[str, Any] = {
        "replicas": settings.replicas,
        "serviceName": settings.name,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": selector_labels(settings)},
        **strategy,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "template": pod.template,
    }
    if pod.claim_templates:
        workload_spec["volumeClaimTemplates"] = pod.claim_templates
    return {
        "apiVersion": api_version,
        "kind": WORKLOAD_KIND,
        "metadata": metadata(settings.name, spec, settings),
        "spec": workload_spec,
    }


def headless_service(spec: PipelineSpec, settings: DeploySettings) -> dict[str, Any]:
    """The governing Service a StatefulSet needs for stable pod DNS names; no ports, no load balancing."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(settings.name, spec, settings),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": selector_labels(settings),
        },
    }


def assemble(flavor: Flavor, pod: PodPlan, workload: dict[str, Any], spec: PipelineSpec,
             settings: DeploySettings) -> Rendering:
    """Order the resources so that what the workload refers to exists before it."""
    manifests = [Manifest(f"storageclass-{sc['metadata']['name']}.yaml", sc) for sc in pod.storage_classes]
    manifests.append(Manifest("service.yaml", headless_service(spec, settings)))
    manifests.append(Manifest("statefulset.yaml", workload))
    if settings.pod_monitor:
        manifests.append(Manifest("podmonitor.yaml", pod_monitor(metadata(settings.name, spec, settings),
                                                                 selector_labels(settings))))
    return Rendering(flavor=flavor.value, manifests=tuple(manifests))


def renderer_for(flavor: Flavor) -> Renderer:
    from .kruise import KruiseRenderer
    from .statefulset import StatefulSetRenderer

    renderers: dict[Flavor, Renderer] = {Flavor.kruise: KruiseRenderer(), Flavor.statefulset: StatefulSetRenderer()}
    return renderers[flavor]


def render(spec: PipelineSpec, settings: DeploySettings) -> Rendering:
    return renderer_for(settings.flavor).render(spec, settings)
