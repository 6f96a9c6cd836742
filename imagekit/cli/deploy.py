"""`imagekit deploy render|validate`: Kubernetes manifests for a pipeline image, checked before a cluster sees them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from imagekit_core import contract
from imagekit_core.references import unpinned_warning
from imagekit_core.spec import PipelineSpec, load_pipeline
from imagekit_core.spec.quantity import format_bytes, format_cpus
from imagekit_deploy.flags import RENDER_FLAGS, RenderFlags
from imagekit_deploy.measured import measured_shm, shm_warning
from imagekit_deploy.renderer import Rendering, render
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION, KRUISE_CRD_ENV, KRUISE_CRD_OPTION, kruise_schema
from imagekit_deploy.settings import HOSTPATH_RECREATES, DeploySettings, Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import ManifestsInvalid, ValidationReport, validate_rendering
from imagekit_deploy.writer import load_rendered, to_stream, write_rendering

from . import deploy_cluster
from .common import ManifestFormat, OutputFormat, emit_json, print_error, stderr
from .flagtable import command_with_flags, option

deploy_app = typer.Typer(
    help="Render Kubernetes manifests for a pipeline image (OpenKruise Advanced StatefulSet or plain "
         "StatefulSet) and validate them against the real schemas.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    deploy_cluster.register(deploy_app)
    app.add_typer(deploy_app, name="deploy")


KRUISE_CRD_HELP = (f"the statefulsets.apps.kruise.io CRD to check the Advanced StatefulSet against "
                   f"(default: ${KRUISE_CRD_ENV}; without either, that one check does not run)")


def render_command(pipeline: Path, flags: RenderFlags, out_dir: Path | None, output: ManifestFormat,
                   kubernetes_version: str, kruise_crd: Path | None, measured_run: Path | None,
                   require_digest: bool) -> None:
    """Render manifests for PIPELINE: printed (YAML stream or JSON List), or one file per resource plus
    kustomization.yaml with --out-dir (exit 2 on a bad setting)."""
    spec = load_pipeline(pipeline)
    settings = resolve_settings(spec, flags)
    image, replicas = flags.image, flags.replicas
    unpinned = unpinned_warning(image, "--image", required=require_digest)  # printed once the rendering is good
    if measured_run is not None:
        warning = shm_warning(spec, measured_shm(measured_run))
        if warning:
            stderr.print(f"warning: {warning}", markup=False)
    if replicas is not None and replicas != spec.shards:
        stderr.print(f"note: --replicas {replicas} overrides the pipeline's shards ({spec.shards}); "
                     f"{contract.SHARD_COUNT} is {replicas}")
    if settings.ssd is SsdMode.hostpath and settings.flavor is Flavor.kruise:
        stderr.print(f"note: {HOSTPATH_RECREATES}", markup=False)
    if spec.uses_s3 and settings.s3_secret is None:
        stderr.print("note: the pipeline reads or writes s3 and no --s3-secret names the credentials' Secret: the "
                     "pods get them only from the node or a service account")
    if spec.uses_run_name and settings.run_name is None:
        stderr.print("note: a source or sink URL names {run} and no --run names the job: each pod then uses its "
                     "own first run's id, which a pod failure changes", markup=False)
    rendering = render(spec, settings)
    report = validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise=kruise_schema(kruise_crd))
    if report.problems:
        raise ManifestsInvalid(report.problems)
    if unpinned:
        stderr.print(f"warning: {unpinned}", markup=False)

    written = write_rendering(rendering, out_dir) if out_dir is not None else []
    if out_dir is None:
        print_manifests(rendering, output)
    elif output is ManifestFormat.json:
        emit_json(render_summary(spec, settings, rendering, report, out_dir, written))
    else:
        typer.echo("".join(f"{path}\n" for path in written), nl=False)
    summary = (f"{settings.flavor.value}: {settings.replicas} pod(s) of {settings.shard_count} shard(s), "
               f"memory {format_bytes(settings.memory_limit)} (shm {format_bytes(spec.shm_bytes)}), "
               f"cpus {format_cpus(settings.cpus) if settings.cpus is not None else 'no limit'}, "
               f"SSD {settings.ssd.value if settings.ssd else 'none'}")
    stderr.print(f"wrote {len(written)} files to {out_dir} — {summary}" if out_dir is not None else summary)
    stderr.print(report.checks_line())
    if out_dir is not None:
        stderr.print(f"apply with: kubectl apply -k {out_dir}")


RENDER_EXTRA = [
    option("out_dir", Path | None, None, "--out-dir", "-d",
           help="write one file per resource plus kustomization.yaml here (their paths on stdout); without it, print "
                "the manifests"),
    option("output", ManifestFormat, ManifestFormat.text, "--output", "-o",
           help="text or yaml: a YAML stream; json: a List (with --out-dir: a JSON summary)"),
    option("kubernetes_version", str, DEFAULT_KUBERNETES_VERSION, "--kubernetes-version",
           help="Kubernetes schemas to check against"),
    option("kruise_crd", Path | None, None, KRUISE_CRD_OPTION, help=KRUISE_CRD_HELP),
    option("measured_run", Path | None, None, "--measured-run",
           help="a run's journal.jsonl: warn when it took more shm (in pages) than the pipeline's `shm`"),
    option("require_digest", bool, False, "--require-digest",
           help="refuse an --image given by tag only (without it: a warning)"),
]
deploy_app.command("render")(command_with_flags(RENDER_FLAGS, RenderFlags, render_command, RENDER_EXTRA))


def print_manifests(rendering: Rendering, output: ManifestFormat) -> None:
    """The manifests on stdout: a YAML stream, or one JSON `List` as `kubectl get -o json` prints."""
    if output is ManifestFormat.json:
        emit_json({"apiVersion": "v1", "kind": "List", "items": [m.body for m in rendering.manifests]})
    else:
        typer.echo(to_stream(rendering), nl=False)


def render_summary(spec: PipelineSpec, settings: DeploySettings, rendering: Rendering, report: ValidationReport,
                   out_dir: Path, written: list[Path]) -> dict[str, Any]:
    return {
        "pipeline": spec.name,
        "flavor": settings.flavor.value,
        "image": settings.image,
        "name": settings.name,
        "namespace": settings.namespace,
        "shard_count": settings.shard_count,
        "replicas": settings.replicas,
        "skipped_shards": list(settings.skip_shards),
        "memory_limit_bytes": settings.memory_limit,
        "cpus": format_cpus(settings.cpus) if settings.cpus is not None else None,
        "shm_bytes": spec.shm_bytes,
        "termination_grace_seconds": settings.termination_grace_seconds,
        "ssd": settings.ssd.value if settings.ssd else None,
        "env": [key for key, _ in settings.env],
        "s3_secret": settings.s3_secret,
        "run_name": settings.run_name,
        "directory": str(out_dir),
        "files": [str(path) for path in written],
        "resources": [{"apiVersion": m.api_version, "kind": m.kind, "name": m.name, "file": m.filename}
                      for m in rendering.manifests],
        "validation": report.as_json(),
    }


@deploy_app.command("validate")
def validate_command(
    path: Path = typer.Argument(..., help="a rendered directory (kustomization.yaml), a directory of YAML files, or one YAML stream"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version", help="Kubernetes schemas to check against"),
    kruise_crd: Path | None = typer.Option(None, KRUISE_CRD_OPTION, help=KRUISE_CRD_HELP),
) -> None:
    """Check manifests against the Kubernetes schemas, the Kruise CRD (when given), Kruise's webhook rules and imagekit's contract (exit 2 \
on a problem)."""
    rendering = load_rendered(path)
    report = validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise=kruise_schema(kruise_crd))
    if output is OutputFormat.json:
        emit_json(report.as_json())
    else:
        for problem in report.problems:
            stderr.print(str(problem))
    if report.problems:
        stderr.print(report.checks_line())
        print_error(f"{path}: {len(report.problems)} problem(s)")
        raise typer.Exit(ManifestsInvalid.exit_code)
    if output is not OutputFormat.json:
        typer.echo(f"{path}: ok — {len(rendering.manifests)} resource(s), {rendering.flavor} flavor")
        typer.echo(report.checks_line())
