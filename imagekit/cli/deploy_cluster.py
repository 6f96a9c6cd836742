"""`imagekit deploy apply|status|wait|logs|results|delete`: a rendered set on a real cluster (kubectl's
KUBECONFIG / --kubeconfig / --context / -n conventions). Thin: the logic is in imagekit_deploy.kube."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import typer

from imagekit_deploy.kube.apply import apply_rendering
from imagekit_deploy.kube.client import CONTEXT_HELP, KUBECONFIG_HELP, Cluster
from imagekit_deploy.kube.collect import copy_results, delete_set, shard_logs
from imagekit_deploy.kube.shards import format_status, set_status, wait_complete
from imagekit_deploy.writer import load_rendered

from .common import OutputFormat, emit_json, emit_text, stderr

NAMESPACE_HELP = "namespace [default: the context's, else default]"


class DryRun(StrEnum):
    none = "none"
    server = "server"


@dataclass(frozen=True)
class ClusterOptions:
    """Where the cluster is, as kubectl takes it: one object from the flags to the connection."""

    kubeconfig: Path | None
    context: str | None
    namespace: str | None

    def connect(self) -> Cluster:
        return Cluster.connect(self.kubeconfig, self.context, self.namespace)


def _options(kubeconfig: Path | None, context: str | None, namespace: str | None) -> ClusterOptions:
    return ClusterOptions(kubeconfig, context, namespace)


KUBECONFIG = typer.Option(None, "--kubeconfig", help=KUBECONFIG_HELP, show_default=False)
CONTEXT = typer.Option(None, "--context", help=CONTEXT_HELP, show_default=False)
NAMESPACE = typer.Option(None, "--namespace", "-n", help=NAMESPACE_HELP, show_default=False)


def register(deploy_app: typer.Typer) -> None:
    @deploy_app.command("apply")
    def apply_command(
        rendered: Path = typer.Argument(..., help="a directory written by `imagekit deploy render -d`"),
        dry_run: DryRun = typer.Option(DryRun.none, "--dry-run", help="server: the cluster checks everything "
                                       "(webhooks included) and keeps nothing"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Server-side apply (field manager imagekit) of a rendered directory; says when running pods will be
        recreated instead of updated in place, and why."""
        cluster = _options(kubeconfig, context, namespace).connect()
        applied = apply_rendering(cluster, load_rendered(rendered), dry_run is DryRun.server)
        if output is OutputFormat.json:
            emit_json([{"kind": a.kind, "name": a.name, "namespace": a.namespace, "action": a.action,
                        "recreate_reason": a.recreate_reason} for a in applied])
        else:
            emit_text("\n".join(a.line(dry_run is DryRun.server) for a in applied))

    @deploy_app.command("status")
    def status_command(
        name: str = typer.Argument(..., help="the StatefulSet's name (render's --name, default the pipeline's)"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """One line per shard: pod, node, phase, steps done/total, current step, restarts, revision, image."""
        cluster = _options(kubeconfig, context, namespace).connect()
        status = set_status(cluster, name, cluster.namespace)
        if output is OutputFormat.json:
            emit_json(status.to_json())
        else:
            emit_text(format_status(status))

    @deploy_app.command("wait")
    def wait_command(
        name: str = typer.Argument(..., help="the StatefulSet's name"),
        timeout: float = typer.Option(1800, "--timeout", help="seconds to wait"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
    ) -> None:
        """Exit 0 when every shard has completed; 1 naming the shard and step when one fails, or at the timeout."""
        cluster = _options(kubeconfig, context, namespace).connect()
        status = wait_complete(cluster, name, cluster.namespace, timeout)
        stderr.print(f"{name}: {len(status.shards)}/{status.replicas} shard(s) complete", markup=False)

    @deploy_app.command("logs")
    def logs_command(
        name: str = typer.Argument(..., help="the StatefulSet's name"),
        shard: int = typer.Option(0, "--shard", help="which shard's pod"),
        step: str | None = typer.Option(None, "--step", help="one step's log (else the pipeline container's)"),
        follow: bool = typer.Option(False, "--follow", "-f", help="follow the container's log"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
    ) -> None:
        """A shard's pipeline container log (the runtime and every step), or one step's log."""
        cluster = _options(kubeconfig, context, namespace).connect()
        for text in shard_logs(cluster, name, cluster.namespace, shard, step, follow):
            typer.echo(text, nl=False)

    @deploy_app.command("results")
    def results_command(
        name: str = typer.Argument(..., help="the StatefulSet's name"),
        out_dir: Path = typer.Option(..., "--out-dir", "-d", help="each shard's results go to DIR/<shard>/"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
    ) -> None:
        """Copy each shard's results off its PV claim, through the API (the pod's exec); their paths on stdout."""
        cluster = _options(kubeconfig, context, namespace).connect()
        emit_text("\n".join(str(path) for path in copy_results(cluster, name, cluster.namespace, out_dir)))

    @deploy_app.command("delete")
    def delete_command(
        name: str = typer.Argument(..., help="the StatefulSet's name"),
        delete_data: bool = typer.Option(False, "--delete-data", help="also delete the PV and SSD claims"),
        kubeconfig: Path | None = KUBECONFIG, context: str | None = CONTEXT, namespace: str | None = NAMESPACE,
    ) -> None:
        """Delete the set and its Service; its claims (checkpoints, results) are kept unless --delete-data."""
        cluster = _options(kubeconfig, context, namespace).connect()
        emit_text("\n".join(delete_set(cluster, name, cluster.namespace, delete_data)))
