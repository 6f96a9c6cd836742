"""What a build puts on disk before an engine sees it, the same for every engine:
- the runtime base's build context (Containerfile.base, the runtime, base-setup.sh and
  any wheels the base image lacks), keyed by its content so it is built once per base
  and runtime; normalised (modes, times) so COPY in either engine sees the same files;
- the pipeline layer's files (pipeline.yaml and the resolved graph);
- every planned layer as a deterministic tarball (deps tarballs cached by their trees),
  which assembly.py stacks on the runtime base.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import imagekit_runtime
from imagekit_runtime.cachedir import cache_root
from imagekit_runtime.errors import EnvironmentMissing
from imagekit_runtime.spec import PipelineSpec
from imagekit_runtime.stepfiles import Kind, walk

from .events import NO_EVENTS, BuildEvents, Stage
from .plan import PlannedLayer, step_image_path
from .tarball import FIXED_MTIME, LayerTar, link_or_copy, write_layer
from .wheels import PythonTarget, download_runtime_wheels

BASE_SETUP = Path(__file__).with_name("base-setup.sh")
RUNTIME_BASE_REPOSITORY = "imagekit/runtime-base"


def containerfile_base() -> Path:
    """Containerfile.base at the root of the imagekit checkout."""
    for candidate in (Path(__file__).resolve().parents[2] / "Containerfile.base", Path.cwd() / "Containerfile.base"):
        if candidate.is_file():
            return candidate
    raise EnvironmentMissing("Containerfile.base not found: run imagekit from its source checkout (pip install -e .)")


def _copy_tree(source: Path, destination: Path) -> None:
    """The package at source (stepfiles.py: without caches or litter) copied to destination."""
    destination.mkdir(parents=True, exist_ok=True)
    for entry in walk(source):
        if entry.kind is Kind.directory:
            (destination / entry.relative).mkdir(exist_ok=True)
        else:
            shutil.copyfile(entry.path, destination / entry.relative)


def normalise(tree: Path) -> None:
    """Modes 0755/0644 and one fixed time on everything, so COPY gives the same layer every time."""
    for root, dirs, files in os.walk(tree, topdown=False):
        for name in files:
            path = Path(root) / name
            path.chmod(0o755 if os.access(path, os.X_OK) or path.suffix == ".sh" else 0o644)
            os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
        for name in dirs:
            path = Path(root) / name
            path.chmod(0o755)
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    tree.chmod(0o755)
    os.utime(tree, (FIXED_MTIME, FIXED_MTIME))


def tree_digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            digest.update(path.relative_to(tree).as_posix().encode() + b"\0")
            digest.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class RuntimeBaseContext:
    directory: Path
    containerfile: str
    tag: str  # imagekit/runtime-base:<key>: same key, same image


def stage_runtime_base(base_image_id: str, target: PythonTarget, timestamp: int | None) -> RuntimeBaseContext:
    contexts = cache_root() / "contexts"
    contexts.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="runtime-base.", dir=contexts))
    try:
        shutil.copyfile(containerfile_base(), work / "Containerfile")
        setup = work / "setup"
        (setup / "wheels").mkdir(parents=True)
        shutil.copyfile(BASE_SETUP, setup / BASE_SETUP.name)
        download_runtime_wheels(target, setup / "wheels")
        _copy_tree(Path(imagekit_runtime.__file__).resolve().parent, work / "runtime" / "imagekit_runtime")
        normalise(work)
        material = f"{base_image_id}\0{timestamp}\0{tree_digest(work)}"
        key = hashlib.sha256(material.encode()).hexdigest()[:16]
        final = contexts / f"runtime-base-{key}"
        if not final.is_dir():  # content-addressed: an existing one is the same
            try:
                os.replace(work, final)
            except OSError:
                if not final.is_dir():
                    raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return RuntimeBaseContext(directory=final, containerfile="Containerfile", tag=f"{RUNTIME_BASE_REPOSITORY}:{key}")


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
            for step in spec.steps
        },
        "producers": spec.producer_of(),
        "results": list(spec.results),
    }
    (meta / "graph.json").write_text(json.dumps(graph, indent=2, sort_keys=True) + "\n")
    return destination


def write_layer_tars(layers: tuple[PlannedLayer, ...], directory: Path,
                     events: BuildEvents = NO_EVENTS) -> dict[str, LayerTar]:
    """Every layer as a tarball in directory/layers (deps tarballs cached by the trees they hold)."""
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "layers").mkdir(parents=True)
    tars: dict[str, LayerTar] = {}
    for layer in layers:
        destination = directory / "layers" / f"{layer.name}.tar"
        if layer.kind == "deps":
            # A deps tree is big and changes rarely: write its tarball once.
            key = hashlib.sha256("\0".join(f"{m.source.name}>{m.target}" for m in layer.mappings).encode()).hexdigest()
            cached = cache_root() / "layer-tars" / f"{key[:24]}.tar"
            digest_file = cached.with_suffix(".json")
            if cached.is_file() and digest_file.is_file():
                meta = json.loads(digest_file.read_text())
                tar = LayerTar(path=cached, sha256=meta["sha256"], size=meta["size"])
            else:
                tar = write_layer(layer.mappings, cached)
                digest_file.write_text(json.dumps({"sha256": tar.sha256, "size": tar.size}))
            link_or_copy(cached, destination)
            tars[layer.name] = LayerTar(path=destination, sha256=tar.sha256, size=tar.size)
        else:
            tars[layer.name] = write_layer(layer.mappings, destination)
        events.stage(layer.name, Stage.WRITTEN, tars[layer.name].size)
    return tars
