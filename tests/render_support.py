"""The deploy-render tests' shared pieces: the example pipelines, an image reference, a rendering of a
pipeline with settings, and views into it (the workload, the pipeline's container, env, volumes, mounts)."""
from __future__ import annotations

from pathlib import Path

from imagekit_core.spec import load_pipeline
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.renderer import render
from imagekit_deploy.settings import resolve_settings

REPO = Path(__file__).resolve().parents[1]
WORDFREQ = REPO / "pipelines" / "wordfreq"
DEPLOY_DATA = REPO / "tests" / "data" / "pipelines"
IMAGE = "registry.example.com/imagekit/pipeline:1.0"


def rendered(pipeline: Path = WORDFREQ, **options):
    spec = load_pipeline(pipeline)
    settings = resolve_settings(spec, RenderFlags(image=options.pop("image", IMAGE), **options))
    return spec, settings, render(spec, settings)


def workload(rendering) -> dict:
    return rendering.workload().body


def pipeline_container(rendering) -> dict:
    return rendering.pod_template()["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container["env"]}


def volumes_of(rendering) -> dict[str, dict]:
    return {volume["name"]: volume for volume in rendering.pod_template()["spec"]["volumes"]}


def mounts_of(container: dict) -> dict[str, dict]:
    return {mount["mountPath"]: mount for mount in container["volumeMounts"]}
