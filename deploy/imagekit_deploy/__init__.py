"""The deploy path: Kubernetes manifests for a built pipeline image, and their validation.

    settings.py     deploy choices, checked against the pipeline (exit 2 on a bad one)
    renderer.py     the renderer contract and the Rendering it returns
    pod.py          the pod both flavours share: volumes, shard identity, security
    kruise.py       OpenKruise Advanced StatefulSet flavour
    statefulset.py  plain apps/v1 StatefulSet flavour
    writer.py       files + kustomization.yaml, a YAML stream, and reading them back
    ordinals.py     pod ordinals and Kruise's reserveOrdinals, read once
    schemas.py      the Kubernetes schemas, and the Kruise CRD given as an input
    validate/       schema, webhook, API-server and imagekit rules, one module per layer

Free of the docker SDK and of the build toolkit.
"""
from .renderer import Manifest, Rendering, render
from .settings import DeploySettings, Flavor, SsdMode, resolve_settings
from .validate import ManifestsInvalid, Problem, ValidationReport, check_rendering, validate_rendering
from .writer import load_rendered, to_stream, write_rendering

__all__ = [
    "DeploySettings", "Flavor", "Manifest", "ManifestsInvalid", "Problem", "Rendering", "SsdMode",
    "ValidationReport", "check_rendering", "load_rendered", "render", "resolve_settings", "to_stream",
    "validate_rendering", "write_rendering",
]
