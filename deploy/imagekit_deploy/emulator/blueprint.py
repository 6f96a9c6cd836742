"""What the emulator creates for one pod, read from the rendered StatefulSet and nothing else.

The rendered pod template is interpreted the way a kubelet would: the downward API is
filled in from the pod's own metadata (name `<set>-<ordinal>`, namespace, the ordinal
label), `$(VAR)` references in values, commands, arguments and `subPathExpr` are
expanded, and each volume gets a place that lives exactly as long as its Kubernetes
counterpart (see `volume_home`). Pure data: no engine here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.labels import POD_PIPELINE_LABEL
from imagekit_core.spec.quantity import parse_bytes, parse_cpus

from ..ordinals import pod_ordinals, reserved_ordinals
from ..pod import IN_PLACE_READINESS_GATE, POD_INDEX_LABEL
from ..renderer import Rendering

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
DEFAULT_NAMESPACE = "default"  # what kubectl's current context usually names
NODE_NAME = "imagekit-local"
SHM_PATH = contract.SHM_MOUNT


def pod_name(set_name: str, ordinal: int) -> str:
    """A StatefulSet's pod name: `<set>-<ordinal>`."""
    return f"{set_name}-{ordinal}"


class VolumeKind:
    SHM = "shm"            # emptyDir medium Memory at /dev/shm: the sandbox's IPC tmpfs
    TMPFS = "tmpfs"        # emptyDir medium Memory elsewhere: a tmpfs of the container
    EMPTY_DIR = "emptyDir" # emptyDir on disk: a directory of the pod
    HOST_PATH = "hostPath" # a directory of the emulated node
    CLAIM = "claim"        # a PersistentVolumeClaim from a volumeClaimTemplate


@dataclass(frozen=True)
class Volume:
    name: str
    kind: str
    source: str = ""           # hostPath: the node path; claim: the PVC name
    size: int | None = None    # emptyDir sizeLimit, in bytes
    create: bool = False       # hostPath type DirectoryOrCreate


@dataclass(frozen=True)
class Mount:
    volume: str
    target: str
    sub_path: str = ""         # expanded subPath / subPathExpr
    read_only: bool = False


@dataclass(frozen=True)
class ContainerPlan:
    """One container of the pod as `docker create` needs it."""

    name: str
    image: str
    entrypoint: list[str] | None   # Kubernetes `command`
    args: list[str] | None         # Kubernetes `args`
    env: dict[str, str]
    user: str | None
    group_add: list[int]
    read_only: bool
    cap_drop: list[str]
    cap_add: list[str]
    no_new_privileges: bool
    memory_limit: int | None
    nano_cpus: int | None
    working_dir: str | None
    mounts: list[Mount]
    ports: tuple[int, ...] = ()    # containerPorts: the sandbox publishes them on 127.0.0.1
    secrets: tuple[str, ...] = ()  # envFrom secretRef names, in order (secrets.py supplies their keys)


@dataclass(frozen=True)
class PodBlueprint:
    set_name: str
    namespace: str
    ordinal: int
    labels: dict[str, str]
    pipeline: str              # the image's pipeline (template label), names its shm directory
    shm_size: int | None       # None: the rendering has no memory /dev/shm volume
    run_as_user: int | None
    run_as_group: int | None
    fs_group: int | None
    restart_policy: str        # Always | OnFailure | Never
    grace_seconds: int
    in_place_gate: bool        # the template has Kruise's InPlaceUpdateReady readiness gate
    init_containers: list[ContainerPlan]
    container: ContainerPlan
    volumes: dict[str, Volume] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return pod_name(self.set_name, self.ordinal)

    @property
    def shard_index(self) -> str:
        return self.container.env.get(contract.SHARD_INDEX, "")

    @property
    def shard_count(self) -> str:
        return self.container.env.get(contract.SHARD_COUNT, "")

    def volume_at(self, container_path: str) -> tuple[Mount, str] | None:
        """The mount holding container_path in the pipeline container, and the path below it."""
        path = PurePosixPath(container_path)
        best: tuple[Mount, str] | None = None
        for mount in self.container.mounts:
            target = PurePosixPath(mount.target)
            holds = path == target or target in path.parents
            if holds and (best is None or len(target.parts) > len(PurePosixPath(best[0].target).parts)):
                best = (mount, str(path.relative_to(target)))
        return best

    def checkpoint_mount(self, variable: str) -> Mount | None:
        """The mount of IMAGEKIT_SSD_DIR or IMAGEKIT_PV_DIR, i.e. which volume is the SSD and which the PV."""
        path = self.container.env.get(variable)
        found = self.volume_at(path) if path else None
        return found[0] if found else None

    def shm_dir(self) -> str:
        return self.container.env.get(contract.SHM_DIR, contract.DEFAULT_SHM_DIR)

    def run_dir(self) -> str:
        """Where the runtime keeps journal and supervisord.conf: `<shm>/<pipeline>/shard-<i>/run`."""
        return f"{self.shm_dir()}/{self.pipeline}/{contract.shard_dir_name(self.shard_index)}/{contract.RUN_DIR_NAME}"

    def results_dir(self) -> str | None:
        explicit = self.container.env.get(contract.RESULTS_DIR)
        if explicit:
            return explicit
        pv = self.container.env.get(contract.PV_DIR)
        return f"{pv}/{contract.RESULTS_DIR_NAME}/{self.shard_index}" if pv else None


@dataclass(frozen=True)
class SetBlueprint:
    """The StatefulSet: which ordinals exist, and how to make each one's pod."""

    name: str
    namespace: str
    replicas: int
    reserved: frozenset[int]
    workload: dict[str, Any]

    def ordinals(self, replicas: int | None = None) -> list[int]:
        """The first `replicas` ordinals that are not reserved (Kruise reserveOrdinals)."""
        return pod_ordinals(self.replicas if replicas is None else replicas, self.reserved)

    def pod(self, ordinal: int) -> PodBlueprint:
        return pod_blueprint(self.workload, self.name, self.namespace, ordinal)


def set_blueprint(rendering: Rendering) -> SetBlueprint:
    workload = rendering.workload().body
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError("the rendered StatefulSet has no metadata.name (fix: re-render)")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        raise UsageError(f"StatefulSet {name}: spec.replicas {replicas!r} is not a count (fix: re-render)")
    reserved = reserved_ordinals(spec.get("reserveOrdinals") or [])
    if reserved.problems:
        problem = reserved.problems[0]
        raise UsageError(f"StatefulSet {name}: {problem.path}: {problem.message} "
                         "(fix: list ordinals as integers or 'a-b' ranges, as Kruise accepts them)")
    return SetBlueprint(name=name, namespace=meta.get("namespace") or DEFAULT_NAMESPACE, replicas=replicas,
                        reserved=reserved.ordinals, workload=workload)


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known names replaced, unknown ones kept, `$$` escapes a `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def _bytes(value: Any, where: str) -> int:
    return parse_bytes(value, file=None, field=f"{where}:")


def _nano_cpus(value: Any, where: str) -> int:
    return int(parse_cpus(value, file=None, field=f"{where}:") * 10**9)


@dataclass(frozen=True)
class _PodMeta:
    name: str
    namespace: str
    labels: dict[str, str]


def _field_value(field_path: str, meta: _PodMeta, where: str) -> str:
    label = re.fullmatch(r"metadata\.labels\['([^']+)'\]", field_path)
    if label:
        return meta.labels.get(label.group(1), "")  # an absent label gives "", as the kubelet does
    if re.fullmatch(r"metadata\.annotations\['([^']+)'\]", field_path):
        return ""
    values = {"metadata.name": meta.name, "metadata.namespace": meta.namespace, "spec.nodeName": NODE_NAME,
              "spec.serviceAccountName": "default"}
    if field_path in values:
        return values[field_path]
    raise UsageError(f"{where}: fieldRef {field_path!r} is not emulated (fix: use metadata.name, "
                     f"metadata.namespace, metadata.labels['…'] or spec.nodeName)")


def _resource_value(ref: dict[str, Any], resources: dict[str, Any], where: str) -> str:
    kind, _, name = str(ref.get("resource", "")).partition(".")
    amount = (resources.get(kind) or {}).get(name)
    if amount is None or name != "memory":
        raise UsageError(f"{where}: resourceFieldRef {ref.get('resource')!r} is not emulated (fix: use limits.memory)")
    divisor = _bytes(ref["divisor"], where) if ref.get("divisor") else 1
    return str(-(-_bytes(amount, where) // divisor))


def _environment(container: dict[str, Any], meta: _PodMeta, where: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        name = entry.get("name")
        if "value" in entry or "valueFrom" not in entry:
            env[name] = expand(str(entry.get("value", "")), env)
            continue
        source = entry["valueFrom"]
        if "fieldRef" in source:
            env[name] = _field_value(source["fieldRef"].get("fieldPath", ""), meta, f"{where} env {name}")
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(source["resourceFieldRef"], container.get("resources") or {},
                                        f"{where} env {name}")
        else:
            kinds = ", ".join(sorted(source))
            raise UsageError(f"{where} env {name}: {kinds} is not emulated (fix: set a value, or run it on a cluster)")
    return env


def _secret_refs(container: dict[str, Any], where: str) -> tuple[str, ...]:
    """envFrom: the Secrets whose keys become variables (the emulator's Secrets: `pod up --secret`)."""
    names = []
    for source in container.get("envFrom") or []:
        name = (source.get("secretRef") or {}).get("name")
        if not isinstance(name, str) or set(source) - {"secretRef"}:
            raise UsageError(f"{where}: envFrom {sorted(source)} is not emulated (fix: envFrom secretRef without a "
                             "prefix, or list the variables under env)")
        names.append(name)
    return tuple(names)


def _security(pod_context: dict[str, Any], container_context: dict[str, Any], where: str
              ) -> tuple[str | None, bool, list[str], list[str], bool]:
    merged = {**pod_context, **container_context}
    uid, gid = merged.get("runAsUser"), merged.get("runAsGroup")
    if merged.get("runAsNonRoot") and uid == 0:
        # The kubelet refuses to start such a container (CreateContainerConfigError).
        raise UsageError(f"{where}: runAsNonRoot with runAsUser 0 (fix: re-render)")
    user = None if uid is None else (f"{uid}:{gid}" if gid is not None else str(uid))
    capabilities = container_context.get("capabilities") or {}
    no_new_privileges = container_context.get("allowPrivilegeEscalation") is False
    if container_context.get("privileged"):
        raise UsageError(f"{where}: privileged containers are not emulated")
    return (user, bool(container_context.get("readOnlyRootFilesystem")), list(capabilities.get("drop") or []),
            list(capabilities.get("add") or []), no_new_privileges)


def _container(container: dict[str, Any], pod_spec: dict[str, Any], meta: _PodMeta, volumes: dict[str, Volume],
               where: str) -> ContainerPlan:
    env = _environment(container, meta, where)
    pod_context = pod_spec.get("securityContext") or {}
    user, read_only, cap_drop, cap_add, no_new_privileges = _security(
        pod_context, container.get("securityContext") or {}, where)
    groups = [pod_context["fsGroup"]] if pod_context.get("fsGroup") is not None else []
    groups += [g for g in pod_context.get("supplementalGroups") or [] if g not in groups]
    limits = (container.get("resources") or {}).get("limits") or {}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume_name = mount.get("name")
        if volume_name not in volumes:
            raise UsageError(f"{where}: volumeMount {volume_name!r} names no volume of the pod (fix: re-render)")
        sub_path = expand(mount["subPathExpr"], env) if "subPathExpr" in mount else mount.get("subPath", "")
        if sub_path.startswith("/") or ".." in PurePosixPath(sub_path).parts:
            raise UsageError(f"{where}: subPath {sub_path!r} leaves its volume")
        mounts.append(Mount(volume=volume_name, target=mount["mountPath"], sub_path=sub_path,
                            read_only=bool(mount.get("readOnly"))))
    command = container.get("command")
    args = container.get("args")
    return ContainerPlan(
        name=container["name"], image=container["image"],
        entrypoint=[expand(str(part), env) for part in command] if command else None,
        args=[expand(str(part), env) for part in args] if args else None,
        env=env, user=user, group_add=groups, read_only=read_only, cap_drop=cap_drop, cap_add=cap_add,
        no_new_privileges=no_new_privileges,
        memory_limit=_bytes(limits["memory"], f"{where} limits.memory") if "memory" in limits else None,
        nano_cpus=_nano_cpus(limits["cpu"], f"{where} limits.cpu") if "cpu" in limits else None,
        working_dir=container.get("workingDir"), mounts=mounts,
        ports=tuple(p["containerPort"] for p in container.get("ports") or [] if isinstance(p.get("containerPort"), int)),
        secrets=_secret_refs(container, where),
    )


def _volumes(pod_spec: dict[str, Any], claim_names: list[str], set_name: str, ordinal: int,
             where: str) -> dict[str, Volume]:
    volumes: dict[str, Volume] = {}
    shm_mounts = {m.get("name") for c in pod_spec.get("containers") or [] for m in c.get("volumeMounts") or []
                  if m.get("mountPath") == SHM_PATH}
    for volume in pod_spec.get("volumes") or []:
        name = volume.get("name")
        if "emptyDir" in volume:
            empty_dir = volume["emptyDir"] or {}
            size = _bytes(empty_dir["sizeLimit"], f"{where} volume {name}") if "sizeLimit" in empty_dir else None
            if empty_dir.get("medium") == "Memory":
                kind = VolumeKind.SHM if name in shm_mounts else VolumeKind.TMPFS
            else:
                kind = VolumeKind.EMPTY_DIR
            volumes[name] = Volume(name=name, kind=kind, size=size)
        elif "hostPath" in volume:
            host_path = volume["hostPath"]
            volumes[name] = Volume(name=name, kind=VolumeKind.HOST_PATH, source=host_path["path"],
                                   create=host_path.get("type") == "DirectoryOrCreate")
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            volumes[name] = Volume(name=name, kind=VolumeKind.CLAIM, source=claim)
        else:
            kinds = ", ".join(sorted(key for key in volume if key != "name"))
            raise UsageError(f"{where}: volume {name} ({kinds}) is not emulated "
                             f"(fix: emptyDir, hostPath and claims are)")
    for claim in claim_names:
        # A volumeClaimTemplate is mounted by its name; its claim is `<template>-<set>-<ordinal>`.
        volumes.setdefault(claim, Volume(name=claim, kind=VolumeKind.CLAIM, source=f"{claim}-{set_name}-{ordinal}"))
    return volumes


def pod_blueprint(workload: dict[str, Any], set_name: str, namespace: str, ordinal: int) -> PodBlueprint:
    spec = workload.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    this_pod = pod_name(set_name, ordinal)
    where = f"StatefulSet {set_name} pod {this_pod}"
    labels = {**((template.get("metadata") or {}).get("labels") or {}),
              POD_INDEX_LABEL: str(ordinal), POD_NAME_LABEL: this_pod}
    meta = _PodMeta(name=this_pod, namespace=namespace, labels=labels)
    claim_names = [name for claim in spec.get("volumeClaimTemplates") or []
                   if isinstance(name := (claim.get("metadata") or {}).get("name"), str)]
    volumes = _volumes(pod_spec, claim_names, set_name, ordinal, where)

    containers = pod_spec.get("containers") or []
    if len(containers) != 1:
        raise UsageError(f"{where}: the emulator runs pods of exactly one container, this one has "
                         f"{len(containers)} (fix: render with `imagekit deploy render`)")
    container = _container(containers[0], pod_spec, meta, volumes, f"{where} container {containers[0].get('name')}")
    init_containers = [_container(init, pod_spec, meta, volumes, f"{where} init container {init.get('name')}")
                       for init in pod_spec.get("initContainers") or []]
    shm = [v for v in volumes.values() if v.kind == VolumeKind.SHM]
    context = pod_spec.get("securityContext") or {}
    return PodBlueprint(
        set_name=set_name, namespace=namespace, ordinal=ordinal, labels=labels,
        pipeline=labels.get(POD_PIPELINE_LABEL, ""),
        shm_size=shm[0].size if shm else None,
        run_as_user=context.get("runAsUser"), run_as_group=context.get("runAsGroup"), fs_group=context.get("fsGroup"),
        restart_policy=pod_spec.get("restartPolicy", "Always"),
        grace_seconds=int(pod_spec.get("terminationGracePeriodSeconds", 30)),
        in_place_gate=any(gate.get("conditionType") == IN_PLACE_READINESS_GATE
                          for gate in pod_spec.get("readinessGates") or []),
        init_containers=init_containers, container=container, volumes=volumes,
    )
