"""`imagekit deploy render|validate`: Kubernetes manifests for a pipeline image, checked before a cluster sees them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from imagekit_deploy.measured import measured_shm, shm_warning
from imagekit_deploy.renderer import render
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION, KRUISE_CRD_ENV, KRUISE_CRD_OPTION, kruise_schema
from imagekit_deploy.settings import Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import ManifestsInvalid, validate_rendering
from imagekit_deploy.writer import load_rendered, to_stream, write_rendering
from imagekit_runtime import contract
from imagekit_runtime.quantity import format_bytes
from imagekit_runtime.spec import load_pipeline

from .common import OutputFormat, emit_json, print_error, stderr

deploy_app = typer.Typer(
    help="Render Kubernetes manifests for a pipeline image (OpenKruise Advanced StatefulSet or plain "
         "StatefulSet) and validate them against the real schemas.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(deploy_app, name="deploy")


KRUISE_CRD_HELP = (f"the statefulsets.apps.kruise.io CRD to check the Advanced StatefulSet against "
                   f"(default: ${KRUISE_CRD_ENV}; without either, that one check does not run)")


@deploy_app.command("render")
def render_command(
    pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
    image: str = typer.Option(..., "--image", help="the built pipeline image, e.g. registry.example.com/wordfreq:1.0"),
    replicas: Optional[int] = typer.Option(None, "--replicas", help="shards = pod ordinals (default: the pipeline's `shards`)"),
    flavor: Flavor = typer.Option(Flavor.kruise, "--flavor", help="kruise (Advanced StatefulSet) or statefulset (apps/v1)"),
    namespace: Optional[str] = typer.Option(None, "--namespace", "-n", help="namespace of the resources (default: kubectl's)"),
    ssd: Optional[SsdMode] = typer.Option(None, "--ssd", help="node-local SSD as a hostPath (default) or a local-PV claim"),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="container memory, shm included (default: shm + 512Mi per parallel step + 256Mi)"),
    pv_size: Optional[str] = typer.Option(None, "--pv-size", help="PersistentVolume claim size (default 10Gi)"),
    pv_storage_class: Optional[str] = typer.Option(None, "--pv-storage-class", help="StorageClass of the PV claim (default: the cluster's default)"),
    ssd_size: Optional[str] = typer.Option(None, "--ssd-size", help="local-PV SSD claim size (default 50Gi)"),
    ssd_storage_class: Optional[str] = typer.Option(None, "--ssd-storage-class", help="StorageClass rendered for local-PV SSD (default imagekit-local-ssd)"),
    ssd_host_path: Optional[str] = typer.Option(None, "--ssd-host-path", help="node directory for hostPath SSD (default /var/lib/imagekit)"),
    skip_shard: list[int] = typer.Option([], "--skip-shard", help="kruise only: reserve this ordinal, i.e. run no pod for this shard (repeatable)"),
    max_unavailable: Optional[str] = typer.Option(None, "--max-unavailable", help="pods updated at once, number or percentage (default 1)"),
    name: Optional[str] = typer.Option(None, "--name", help="StatefulSet and Service name (default: the pipeline's name)"),
    output_dir: Optional[Path] = typer.Option(None, "-o", "--output-dir", help="write one file per resource plus kustomization.yaml here; without it, print a YAML stream"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", help="text or json (a summary on stdout)"),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version", help="Kubernetes schemas to check against"),
    kruise_crd: Optional[Path] = typer.Option(None, KRUISE_CRD_OPTION, help=KRUISE_CRD_HELP),
    measured_run: Optional[Path] = typer.Option(None, "--measured-run", help="a run's journal.jsonl: warn when it "
                                                "took more shm (in pages) than the pipeline's `shm`"),
) -> None:
    """Render manifests for PIPELINE: one resource per file plus kustomization.yaml (exit 2 on a bad setting)."""
    spec = load_pipeline(pipeline)
    settings = resolve_settings(
        spec, image=image, replicas=replicas, flavor=flavor, namespace=namespace, ssd=ssd,
        memory_limit=memory_limit, pv_size=pv_size, pv_storage_class=pv_storage_class, ssd_size=ssd_size,
        ssd_storage_class=ssd_storage_class, ssd_host_path=ssd_host_path, skip_shards=tuple(skip_shard),
        max_unavailable=max_unavailable, name=name,
    )
    if measured_run is not None:
        warning = shm_warning(spec, measured_shm(measured_run))
        if warning:
            stderr.print(f"warning: {warning}", markup=False)
    if replicas is not None and replicas != spec.shards:
        stderr.print(f"note: --replicas {replicas} overrides the pipeline's shards ({spec.shards}); "
                     f"{contract.SHARD_COUNT} is {replicas}")
    rendering = render(spec, settings)
    report = validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise=kruise_schema(kruise_crd))
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
            "validation": report.as_json(),
        }
        if output_dir is None:
            payload["manifests"] = [m.body for m in rendering.manifests]
        emit_json(payload)
    elif output_dir is None:
        typer.echo(to_stream(rendering), nl=False)
    summary = (f"{settings.flavor.value}: {settings.replicas} pod(s) of {settings.shard_count} shard(s), "
               f"memory {format_bytes(settings.memory_limit)} (shm {format_bytes(spec.shm_bytes)}), "
               f"SSD {settings.ssd.value if settings.ssd else 'none'}")
    if output_dir is not None:
        stderr.print(f"wrote {len(written)} files to {output_dir} — {summary}")
    else:
        stderr.print(summary)
    stderr.print(report.checks_line())
    if output_dir is not None:
        stderr.print(f"apply with: kubectl apply -k {output_dir}")


@deploy_app.command("validate")
def validate_command(
    path: Path = typer.Argument(..., help="a rendered directory (kustomization.yaml), a directory of YAML files, or one YAML stream"),
    output: OutputFormat = typer.Option(OutputFormat.text, "--output", help="text or json"),
    kubernetes_version: str = typer.Option(DEFAULT_KUBERNETES_VERSION, "--kubernetes-version", help="Kubernetes schemas to check against"),
    kruise_crd: Optional[Path] = typer.Option(None, KRUISE_CRD_OPTION, help=KRUISE_CRD_HELP),
) -> None:
    """Check manifests against the Kubernetes schemas, the Kruise CRD (when given), Kruise's webhook rules and imagekit's contract (exit 2 on a problem)."""
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
        stderr.print(f"{path}: ok — {len(rendering.manifests)} resource(s), {rendering.flavor} flavour")
    stderr.print(report.checks_line())
