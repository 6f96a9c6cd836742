"""The renderer: a pipeline spec plus deploy settings in, Kubernetes resources out.

Both flavors render the same pod (`pod.py`) in a StatefulSet; they differ in three values:
- kruise, an OpenKruise Advanced StatefulSet (`apps.kruise.io/v1beta1`): podUpdatePolicy InPlaceIfPossible
  (an in-place update swaps the image and restarts the container inside the same pod, so /dev/shm and the
  SSD survive it and the new image resumes from shm; the pod carries the InPlaceUpdateReady gate), and
  reserveOrdinals for skipped shards;
- statefulset, a plain `apps/v1` StatefulSet for clusters without OpenKruise: a new image recreates the
  pod (shm is lost; it resumes from its SSD checkpoint), and no reserveOrdinals.
A `Rendering` is plain data: the writer turns it into files and `load_rendered` turns files back into one,
so `deploy validate` and the local pod emulator read exactly what `kubectl apply -k` would.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagekit_core.errors import UsageError
from imagekit_core.spec import PipelineSpec

from .monitoring import pod_monitor
from .pod import PodPlan, build_pod, metadata, selector_labels
from .settings import DeploySettings, Flavor

WORKLOAD_KIND = "StatefulSet"
KRUISE_API_VERSION = "apps.kruise.io/v1beta1"
API_VERSIONS = {Flavor.kruise: KRUISE_API_VERSION, Flavor.statefulset: "apps/v1"}


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


def statefulset(api_version: str, spec: PipelineSpec, settings: DeploySettings, pod: PodPlan,
                strategy: dict[str, Any]) -> dict[str, Any]:
    """The StatefulSet both flavors share; `strategy` holds what differs (update strategy, reserveOrdinals)."""
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


def update_strategy(settings: DeploySettings) -> dict[str, Any]:
    """What the flavors' StatefulSets differ in: the update strategy, and (kruise) the reserved ordinals."""
    if settings.flavor is Flavor.statefulset:
        return {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
    strategy: dict[str, Any] = {}
    if settings.skip_shards:  # ordinals are shards: a reserved ordinal is a shard nobody runs
        strategy["reserveOrdinals"] = list(settings.skip_shards)
    strategy["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {
        "podUpdatePolicy": "InPlaceIfPossible", "maxUnavailable": settings.max_unavailable, "partition": 0}}
    return strategy


def render(spec: PipelineSpec, settings: DeploySettings) -> Rendering:
    pod = build_pod(spec, settings, in_place_updates=settings.flavor is Flavor.kruise)
    workload = statefulset(API_VERSIONS[settings.flavor], spec, settings, pod, update_strategy(settings))
    return assemble(settings.flavor, pod, workload, spec, settings)
