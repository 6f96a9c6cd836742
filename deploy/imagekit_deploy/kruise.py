"""OpenKruise Advanced StatefulSet (`apps.kruise.io/v1beta1`): in-place image updates, reserveOrdinals.

An in-place update swaps the image and restarts the container inside the same pod,
so /dev/shm and the SSD survive it and the new image resumes from shm.
"""
from __future__ import annotations

from typing import Any

from imagekit_runtime.spec import PipelineSpec

from .pod import build_pod, metadata, selector_labels
from .renderer import Rendering, assemble
from .settings import DeploySettings, Flavor

API_VERSION = "apps.kruise.io/v1beta1"


class KruiseRenderer:
    flavor = Flavor.kruise

    def render(self, spec: PipelineSpec, settings: DeploySettings) -> Rendering:
        pod = build_pod(spec, settings, in_place_updates=True)
        workload_spec: dict[str, Any] = {
            "replicas": settings.replicas,
            "serviceName": settings.name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector_labels(settings)},
        }
        if settings.skip_shards:
            # Ordinals are shards: a reserved ordinal is a shard nobody runs.
            workload_spec["reserveOrdinals"] = list(settings.skip_shards)
        workload_spec["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "podUpdatePolicy": "InPlaceIfPossible",
                "maxUnavailable": settings.max_unavailable,
                "partition": 0,
            },
        }
        workload_spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": "Retain"}
        workload_spec["template"] = pod.template
        if pod.claim_templates:
            workload_spec["volumeClaimTemplates"] = pod.claim_templates
        workload = {
            "apiVersion": API_VERSION,
            "kind": "StatefulSet",
            "metadata": metadata(settings.name, spec, settings),
            "spec": workload_spec,
        }
        return assemble(self.flavor, pod, workload, spec, settings)
