"""Plain `apps/v1` StatefulSet: the same pod, for clusters without OpenKruise.

No in-place updates (a new image recreates the pod, so shm is lost and the pod
resumes from its SSD checkpoint) and no reserveOrdinals.
"""
from __future__ import annotations

from typing import Any

from imagekit_runtime.spec import PipelineSpec

from .pod import build_pod, metadata, selector_labels
from .renderer import Rendering, assemble
from .settings import DeploySettings, Flavor

API_VERSION = "apps/v1"


class StatefulSetRenderer:
    flavor = Flavor.statefulset

    def render(self, spec: PipelineSpec, settings: DeploySettings) -> Rendering:
        pod = build_pod(spec, settings, in_place_updates=False)
        workload_spec: dict[str, Any] = {
            "replicas": settings.replicas,
            "serviceName": settings.name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector_labels(settings)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": pod.template,
        }
        if pod.claim_templates:
            workload_spec["volumeClaimTemplates"] = pod.claim_templates
        workload = {
            "apiVersion": API_VERSION,
            "kind": "StatefulSet",
            "metadata": metadata(settings.name, spec, settings),
            "spec": workload_spec,
        }
        return assemble(self.flavor, pod, workload, spec, settings)
