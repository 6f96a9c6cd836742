"""What a build puts on disk before an engine sees it, the same for every engine:
- the pipeline layer's files (pipeline.yaml and the resolved graph);
- every planned layer as a deterministic tarball (deps tarballs cached by their trees),
  which assembly.py stacks on the runtime base.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

from imagekit_core.cachedir import cache_root
from imagekit_core.spec import PipelineSpec

from .events import NO_EVENTS, BuildEvents, Stage
from .plan import PlannedLayer, step_image_path
from .reuse import RemoteLayer
from .tarball import LayerTar, Mapping, link_or_copy, write_layer


def pipeline_files(spec: PipelineSpec, destination: Path) -> Path:
    """The pipeline layer's tree: pipeline.yaml as written, and the resolved graph.

    Nothing here depends on a step's code, so changing one step changes its code layer only."""
    if destination.exists():
        shutil.rmtree(destination)
    meta = destination / ".imagekit"
    meta.mkdir(parents=True)
    shutil.copyfile(spec.file, destination / "pipeline.yaml")
    graph = {
        "pipeline": spec.name,
        "order": spec.topological_order(),
        "steps": {
            step.name: {
                "path": str(step_image_path(spec, step)),
                "inputs": list(step.inputs),
                "outputs": list(step.outputs),
            }
            for step in spec.packaged_steps
        },
        "producers": spec.producer_of(),
        "results": list(spec.results),
    }
    (meta / "graph.json").write_text(json.dumps(graph, indent=2, sort_keys=True) + "\n")
    return destination


def cached_layer_tar(mappings: tuple[Mapping, ...]) -> LayerTar:
    """The tarball of a deps layer, written once: its trees are content-addressed (their directory names
    are their keys), and big, and change rarely."""
    key = hashlib.sha256("\0".join(f"{m.source.name}>{m.target}" for m in mappings).encode()).hexdigest()
    cached = cache_root() / "layer-tars" / f"{key[:24]}.tar"
    digest_file = cached.with_suffix(".json")
    if cached.is_file() and digest_file.is_file():
        meta = json.loads(digest_file.read_text())
        return LayerTar(path=cached, sha256=meta["sha256"], size=meta["size"])
    tar = write_layer(mappings, cached)
    temporary = digest_file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    temporary.write_text(json.dumps({"sha256": tar.sha256, "size": tar.size}))
    os.replace(temporary, digest_file)
    return tar


def write_layer_tars(layers: tuple[PlannedLayer, ...], directory: Path,
                     events: BuildEvents = NO_EVENTS) -> dict[str, LayerTar | RemoteLayer]:
    """Every layer as a tarball in directory/layers (deps tarballs cached by the trees they hold), but those
    reused from a cache image: they stay where they are."""
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "layers").mkdir(parents=True)
    tars: dict[str, LayerTar | RemoteLayer] = {}
    for layer in layers:
        if layer.reused is not None:
            tars[layer.name] = layer.reused
            events.stage(layer.name, Stage.REUSED, layer.reused.size)
            continue
        destination = directory / "layers" / f"{layer.name}.tar"
        if layer.kind == "deps":
            tar = cached_layer_tar(layer.mappings)
            link_or_copy(tar.path, destination)
            tars[layer.name] = LayerTar(path=destination, sha256=tar.sha256, size=tar.size)
        else:
            tars[layer.name] = write_layer(layer.mappings, destination)
        events.stage(layer.name, Stage.WRITTEN, tars[layer.name].size)
    return tars
