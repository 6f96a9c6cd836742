"""`imagekit deploy apply DIR`: server-side apply of a rendered directory, saying what the rollout will do."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..renderer import WORKLOAD_KIND, Manifest, Rendering
from ..rollout import why_recreated
from .client import FIELD_MANAGER, Cluster, ClusterError, api_message


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    namespace: str
    action: str             # created | configured | unchanged (with --dry-run=server: what would be)
    recreate_reason: str | None = None  # a workload whose running pods will be recreated, not updated in place

    def line(self, dry_run: bool) -> str:
        text = f"{self.kind.lower()}/{self.name} {self.action}{' (server dry run)' if dry_run else ''}"
        if self.recreate_reason:
            text += f"; its pods will be recreated (shm lost, resumed from the SSD): {self.recreate_reason}"
        return text


def _namespace(manifest: Manifest, cluster: Cluster) -> str:
    meta = manifest.body.get("metadata") or {}
    return str(meta.get("namespace") or cluster.namespace)


def _without_status(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "status"}


def apply_one(cluster: Cluster, manifest: Manifest, dry_run: bool) -> Applied:
    from kubernetes.client.rest import ApiException

    namespace = _namespace(manifest, cluster)
    before = cluster.get(manifest.api_version, manifest.kind, manifest.name, namespace)
    body = {**manifest.body, "metadata": {**(manifest.body.get("metadata") or {}), "namespace": namespace}}
    resource = cluster.resource(manifest.api_version, manifest.kind)
    try:
        after = resource.server_side_apply(body=body, name=manifest.name, namespace=namespace,
                                           field_manager=FIELD_MANAGER, force_conflicts=True,
                                           dry_run="All" if dry_run else None).to_dict()
    except ApiException as exc:
        raise ClusterError(f"{manifest.filename}: {manifest.kind} {manifest.name}: the cluster refused it "
                           f"({exc.status}: {api_message(exc)})") from None
    if before is None:
        action = "created"
    elif (before.get("metadata") or {}).get("generation") == (after.get("metadata") or {}).get("generation") \
            and _without_status(before).get("spec") == _without_status(after).get("spec"):
        action = "unchanged"
    else:
        action = "configured"
    reason = why_recreated(before, after) if before is not None and manifest.kind == WORKLOAD_KIND else None
    return Applied(manifest.kind, manifest.name, namespace, action, reason)


def apply_rendering(cluster: Cluster, rendering: Rendering, dry_run: bool) -> list[Applied]:
    return [apply_one(cluster, manifest, dry_run) for manifest in rendering.manifests]
