"""`imagekit deploy render|validate`: Kubernetes manifests for a pipeline image, checked before a cluster sees them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from imagekit_deploy.renderer import Rendering, render
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION
from imagekit_deploy.settings import Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import ManifestsInvalid, ValidationReport, validate_rendering
from imagekit_deploy.writer import load_rendered, to_stream, write_rendering
from imagekit_runtime.errors import EnvironmentMissing
from imagekit_runtime.spec import format_size, load_pipeline

from .common import OutputFormat, emit_json, exits_on_error, stderr

deploy_app = typer.Typer(
    help="Render Kubernetes manifests for a pipeline image (OpenKruise Advanced StatefulSet or plain "
         "StatefulSet) and validate them against the real schemas.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")


def _validate(rendering: Rendering, kubernetes_version: str, kruise_crd: Path | None) -> ValidationReport:
    """Full validation when the schemas are at hand; the rule checks alone (with a note) when not."""
    try:
        return validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise_crd=kruise_crd)
    except EnvironmentMissing as exc:
        stderr.print(f"note: schema checks skipped, rule checks only: {exc}", highlight=False, markup=False)
        return validate_rendering(rendering, schemas=False)


def _report_json(report: ValidationReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "kubernetes_version": report.kubernetes_version,
        "kruise_crd": report.kruise_crd,
        "problems": [
            {"file": p.file, "resource": p.resource, "path": p.path, "message": p.message, "check": p.check}
            for p in report.problems
        ],
        "checked": report.checked,
    }


@deploy_app.command("render")
@exits_on_error
def render_command(
    pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
    image: str = typer.Option(..., "--image", help="the built pipeline image, e.g. registry.example.com/wordfreq:1.0"),
    replicas: int | None = typer.Option(None, "--replicas", help="shards = pod ordinals (default: the pipeline's `shards`)"),
    flavor: Flavor = typer.Option(Flavor.kruise, "--flavor", help="kruise (Advanced StatefulSet) or statefulset (apps/v1)"),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="namespace of the resources (default: kubectl's)"),
    ssd: SsdMode | None = typer.Option(None, "--ssd", help="node-local SSD as a hostPath (default) or a local-PV claim"),
    memory_limit: str | None = typer.Option(None, "--memory-limit", help="container memory, shm included (default: shm + 512Mi per parallel step + 256Mi)"),
    pv_size: str | None = typer.Option(None, "--pv-size", help="PersistentVolume claim size (default 10Gi)"),
    pv_storage_class: str | None = typer.Option(None, "--pv-storage-class", help="StorageClass of the PV claim (default: the cluster's default)"),
    ssd_size: str | None = typer.Option(None, "--ssd-size", help="local-PV SSD claim size (default 50Gi)"),
    ssd_storage_class: str | None = typer.Option(None, "--ssd-storage-class", help="StorageClass rendered for local-PV SSD (default imagekit-local-ssd)"),
    ssd_host_path: str | None = typer.Option(None, "--ssd-host-path", help="node directory for hostPath SSD (default /var/lib/imagekit)"),
    skip_shard: list[int] = typer.Option([], "--skip-shard", help="kruise only: reserve this ordinal, i.e. run no pod for this shard (repeatable)"),
    max_unavailable: str | None = typer.Option(None, "--max-unavailable", help="pods updated at once, number or percentage (default 1)"),
    name: str | None = typer.Option(None, "--name", help="StatefulSet and Service name (default: the pipeline's name)"),
    output_dir: Path | None = typer.Option(None, "-o", "--output-dir", help="write one file per resource plus kustomization.yaml here; without it, print a YAML stream"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", help="text or json (a summary on stdout)"),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version", help="Kubernetes schemas to check against"),
    kruise_crd: Path | None = typer.Option(None, "--kruise-crd", help="the statefulsets.apps.kruise.io CRD (default: shared/schemas/kruise/)"),
) -> None:
    """Render manifests for PIPELINE: one resource per file plus kustomization.yaml (exit 2 on a bad setting)."""
    spec = load_pipeline(pipeline)
    settings = resolve_settings(
        spec, image=image, replicas=replicas, flavor=flavor, namespace=namespace, ssd=ssd,
        memory_limit=memory_limit, pv_size=pv_size, pv_storage_class=pv_storage_class, ssd_size=ssd_size,
        ssd_storage_class=ssd_storage_class, ssd_host_path=ssd_host_path, skip_shards=tuple(skip_shard),
        max_unavailable=max_unavailable, name=name,
    )
    if replicas is not None and replicas != spec.shards:
        stderr.print(f"note: --replicas {replicas} overrides the pipeline's shards ({spec.shards}); "
                     f"IMAGEKIT_SHARD_COUNT is {replicas}", highlight=False, markup=False)
    rendering = render(spec, settings)
    report = _validate(rendering, kubernetes_version, kruise_crd)
    if report.problems:
        raise ManifestsInvalid(report.problems)

    written = write_rendering(rendering, output_dir) if output_dir is not None else []
    if output is OutputFormat.json:
        payload: dict[str, Any] = {
            "pipeline": spec.name,
            "flavor": settings.flavor.value,
            "image": settings.image,
            "name": settings.name,
            "namespace": settings.namespace,
            "shard_count": settings.shard_count,
            "replicas": settings.replicas,
            "skipped_shards": list(settings.skip_shards),
            "memory_limit_bytes": settings.memory_limit,
            "shm_bytes": spec.shm_bytes,
            "termination_grace_seconds": settings.termination_grace_seconds,
            "ssd": settings.ssd.value if settings.ssd else None,
            "directory": str(output_dir) if output_dir is not None else None,
            "files": [str(path) for path in written],
            "resources": [{"apiVersion": m.api_version, "kind": m.kind, "name": m.name, "file": m.filename}
                          for m in rendering.manifests],
            "validation": _report_json(report),
        }
        if output_dir is None:
            payload["manifests"] = [m.body for m in rendering.manifests]
        emit_json(payload)
    elif output_dir is None:
        typer.echo(to_stream(rendering), nl=False)
    summary = (f"{settings.flavor.value}: {settings.replicas} pod(s) of {settings.shard_count} shard(s), "
               f"memory {format_size(settings.memory_limit)} (shm {format_size(spec.shm_bytes)}), "
               f"SSD {settings.ssd.value if settings.ssd else 'none'}, checked against Kubernetes "
               f"{report.kubernetes_version}" + (" and the Kruise CRD" if report.kruise_crd else ""))
    if output_dir is not None:
        stderr.print(f"wrote {len(written)} files to {output_dir} — {summary}", highlight=False, markup=False)
        stderr.print(f"apply with: kubectl apply -k {output_dir}", highlight=False, markup=False)
    else:
        stderr.print(summary, highlight=False, markup=False)


@deploy_app.command("validate")
@exits_on_error
def validate_command(
    path: Path = typer.Argument(..., help="a rendered directory (kustomization.yaml), a directory of YAML files, or one YAML stream"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", help="text or json"),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version", help="Kubernetes schemas to check against"),
    kruise_crd: Path | None = typer.Option(None, "--kruise-crd", help="the statefulsets.apps.kruise.io CRD (default: shared/schemas/kruise/)"),
) -> None:
    """Check manifests against the Kruise CRD, the Kubernetes schemas, Kruise's webhook rules and imagekit's contract (exit 2 on a problem)."""
    rendering = load_rendered(path)
    report = validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise_crd=kruise_crd)
    if output is OutputFormat.json:
        emit_json(_report_json(report))
    else:
        for problem in report.problems:
            stderr.print(str(problem), highlight=False, markup=False)
    if report.problems:
        stderr.print(f"[bold red]error:[/] {path}: {len(report.problems)} problem(s)", highlight=False)
        raise typer.Exit(ManifestsInvalid.exit_code)
    if output is not OutputFormat.json:
        layers = sorted({check for entry in report.checked for check in entry["checks"]})
        stderr.print(f"{path}: ok — {len(rendering.manifests)} resource(s), {rendering.flavor} flavour, "
                     f"checks: {', '.join(layers)}", highlight=False, markup=False)
