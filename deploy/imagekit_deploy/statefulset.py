"""Plain `apps/v1` StatefulSet: the same pod, for clusters without OpenKruise.

No in-place updates (a new image recreates the pod, so shm is lost and the pod
resumes from its SSD checkpoint) and no reserveOrdinals.
"""
from __future__ import annotations

from imagekit_runtime.spec import PipelineSpec

from .pod import build_pod
from .renderer import Rendering, assemble, statefulset
from .settings import DeploySettings, Flavor

API_VERSION = "apps/v1"


class StatefulSetRenderer:
    flavor = Flavor.statefulset

    def render(self, spec: PipelineSpec, settings: DeploySettings) -> Rendering:
        pod = build_pod(spec, settings, in_place_updates=False)
        strategy = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}
        return assemble(self.flavor, pod, statefulset(API_VERSION, spec, settings, pod, strategy), spec, settings)
