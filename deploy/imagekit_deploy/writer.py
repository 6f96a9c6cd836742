"""Renderings to files and back: one resource per file plus kustomization.yaml, or one YAML stream.

Output is byte-for-byte deterministic: keys keep the renderer's (conventional)
order, and nothing depends on time, host or the path the pipeline was read from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from imagekit_core.errors import UsageError
from imagekit_core.spec.yaml_reader import parse_yaml_documents, read_yaml_text

from .renderer import KRUISE_API_VERSION, WORKLOAD_KIND, Manifest, Rendering

KUSTOMIZATION = "kustomization.yaml"
HEADER = "# Rendered by `imagekit deploy render` ({flavor} flavor). Re-render rather than edit.\n"
HEADER_PREFIX = "# Rendered by `imagekit deploy render`"


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key as kubectl prints them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)


def to_yaml(body: dict[str, Any]) -> str:
    return yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)


def kustomization(rendering: Rendering) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [manifest.filename for manifest in rendering.manifests],
    }


def to_stream(rendering: Rendering) -> str:
    """All resources as one multi-document YAML stream (what `kubectl apply -f -` reads)."""
    header = HEADER.format(flavor=rendering.flavor)
    return header + "".join(f"---\n{to_yaml(manifest.body)}" for manifest in rendering.manifests)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def _previous_files(directory: Path) -> list[str]:
    """Files an earlier render into this directory listed, so that stale ones can go."""
    path = directory / KUSTOMIZATION
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if text.startswith(HEADER_PREFIX) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    resources = data.get("resources") if isinstance(data, dict) else None
    return [name for name in resources or [] if isinstance(name, str) and "/" not in name]


def write_rendering(rendering: Rendering, directory: Path) -> list[Path]:
    """Write one file per resource plus kustomization.yaml; return the paths written."""
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"-o {directory} is a file (fix: name a directory)")
    kustomization_path = directory / KUSTOMIZATION
    if kustomization_path.is_file() and not kustomization_path.read_text().startswith(HEADER_PREFIX):
        raise UsageError(f"{kustomization_path} was not written by imagekit (fix: render into an empty or imagekit-owned directory)")
    directory.mkdir(parents=True, exist_ok=True)
    header = HEADER.format(flavor=rendering.flavor)
    stale = set(_previous_files(directory)) - {manifest.filename for manifest in rendering.manifests}
    written = []
    for manifest in rendering.manifests:
        path = directory / manifest.filename
        _write_atomically(path, header + to_yaml(manifest.body))
        written.append(path)
    _write_atomically(kustomization_path, header + to_yaml(kustomization(rendering)))
    written.append(kustomization_path)
    for name in sorted(stale):
        stale_path = directory / name
        if stale_path.is_file() and stale_path.read_text().startswith(HEADER_PREFIX):
            stale_path.unlink()
    return written


def _load_documents(path: Path) -> list[Manifest]:
    manifests = []
    for document in parse_yaml_documents(read_yaml_text(path), path):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise UsageError(f"{path}: a document is not a mapping (fix: one Kubernetes resource per document)")
        manifests.append(Manifest(path.name, document))
    return manifests


def _flavor_of(manifests: list[Manifest]) -> str:
    for manifest in manifests:
        if manifest.kind == WORKLOAD_KIND:
            return "kruise" if manifest.api_version == KRUISE_API_VERSION else "statefulset"
    return "unknown"


def load_rendered(path: Path) -> Rendering:
    """Read a rendered directory (through its kustomization.yaml), a directory of YAML files, or one YAML stream."""
    if not path.exists():
        raise UsageError(f"{path} does not exist (fix: render into it with `imagekit deploy render PIPELINE -o {path}`)")
    if path.is_file():
        manifests = _load_documents(path)
    else:
        kustomization_path = path / KUSTOMIZATION
        if kustomization_path.is_file():
            data = parse_yaml_documents(read_yaml_text(kustomization_path), kustomization_path)
            names = data[0].get("resources") if len(data) == 1 and isinstance(data[0], dict) else None
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise UsageError(f"{kustomization_path}: resources is not a list of files (fix: re-render)")
            files = []
            root = path.resolve()
            for name in names:
                file = (root / name).resolve() if "\0" not in name else root
                if not file.is_relative_to(root) or file == root:
                    raise UsageError(f"{kustomization_path}: resource {name!r} is outside {path} "
                                     "(fix: list files of this directory only, as kustomize requires)")
                if not file.is_file():
                    raise UsageError(f"{kustomization_path}: resource {name!r} is not a file here (fix: re-render)")
                files.append(file)
        else:
            files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        manifests = [manifest for file in files for manifest in _load_documents(file)]
    if not manifests:
        raise UsageError(f"{path} holds no Kubernetes resources (fix: render into it first)")
    return Rendering(flavor=_flavor_of(manifests), manifests=tuple(manifests))
