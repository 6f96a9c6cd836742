"""OpenKruise Advanced StatefulSet (`apps.kruise.io/v1beta1`): in-place image updates, reserveOrdinals.

An in-place update swaps the image and restarts the container inside the same pod,
so /dev/shm and the SSD survive it and the new image resumes from shm.
"""
from __future__ import annotations

from typing import Any

from imagekit_runtime.spec import PipelineSpec

from .pod import build_pod
from .renderer import Rendering, assemble, statefulset
from .settings import DeploySettings, Flavor

API_VERSION = "apps.kruise.io/v1beta1"


class KruiseRenderer:
    flavor = Flavor.kruise

    def render(self, spec: PipelineSpec, settings: DeploySettings) -> Rendering:
        pod = build_pod(spec, settings, in_place_updates=True)
        strategy: dict[str, Any] = {}
        if settings.skip_shards:
            # Ordinals are shards: a reserved ordinal is a shard nobody runs.
            strategy["reserveOrdinals"] = list(settings.skip_shards)
        strategy["updateStrategy"] = {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "podUpdatePolicy": "InPlaceIfPossible",
                "maxUnavailable": settings.max_unavailable,
                "partition": 0,
            },
        }
        return assemble(self.flavor, pod, statefulset(API_VERSION, spec, settings, pod, strategy), spec, settings)
