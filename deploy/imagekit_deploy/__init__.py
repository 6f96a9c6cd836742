"""The deploy path: Kubernetes manifests for a built pipeline image, their validation, the verbs for a real
cluster (kube/) and the local pod runner (emulator/). Free of the docker SDK and of the build toolkit; where
each part lives: docs/architecture.md."""
from .renderer import Manifest, Rendering, render
from .settings import DeploySettings, Flavor, SsdMode, resolve_settings
from .validate import ManifestsInvalid, Problem, ValidationReport, check_rendering, validate_rendering
from .writer import load_rendered, to_stream, write_rendering

__all__ = [
    "DeploySettings", "Flavor", "Manifest", "ManifestsInvalid", "Problem", "Rendering", "SsdMode",
    "ValidationReport", "check_rendering", "load_rendered", "render", "resolve_settings", "to_stream",
    "validate_rendering", "write_rendering",
]
