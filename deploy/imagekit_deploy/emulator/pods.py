"""Pods on the Docker engine: create and remove one, bring a whole set up or down.

A pod is three kinds of container, as a kubelet makes them:
  <pod>.sandbox      holds the pod's IPC namespace (`ipc_mode=shareable`) with /dev/shm a tmpfs
                     of the shm volume's sizeLimit, its network (the engine's default, or `up --network`)
                     and its hostname (the pod name);
                     it only waits, like Kubernetes' pause container
  <pod>.<init>       each init container, run to completion in order, joined to the sandbox
  <pod>.<container>  the pipeline container, joined to the sandbox's IPC and network, so it sees
                     the sandbox's /dev/shm; restarted by the engine per the pod's restartPolicy,
                     which keeps the sandbox and therefore shm, as a container restart in a pod does
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit_core.errors import ImagekitError

from .blueprint import ContainerPlan, PodBlueprint, VolumeKind, pod_blueprint, pod_name
from .engine import Engine
from .secrets import secret_values
from .state import LABEL_CONTAINER, LABEL_ORDINAL, LABEL_POD, LABEL_REVISION, LABEL_ROLE, SetState, StateDir, find_state_dir
from .volumes import HostVolumes

SANDBOX = "sandbox"
INIT_TIMEOUT = 300
DEFAULT_SHM = 64 * 1024 * 1024  # Docker's own default, when the rendering has no memory /dev/shm
_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}
# The pause container: nothing but waiting, and a clean exit on SIGTERM.
_PAUSE = ("import signal, sys\n"
          "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
          "signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n"
          "while True:\n    signal.pause()\n")


class PodFailed(ImagekitError):
    """A pod could not be started (an init container failed): exit 1."""




def pod_labels(state_dir: StateDir, state: SetState, pod: PodBlueprint, role: str, container: str) -> dict[str, str]:
    return {**pod.labels, **state_dir.labels(state.name), LABEL_POD: pod.name, LABEL_ORDINAL: str(pod.ordinal),
            LABEL_ROLE: role, LABEL_CONTAINER: container, LABEL_REVISION: state.pod_revisions.get(pod.name, "")}


@dataclass
class PodSet:
    """One emulated StatefulSet: its state directory, the engine, and the pods' volumes."""

    state_dir: StateDir
    engine: Engine

    @property
    def volumes(self) -> HostVolumes:
        return HostVolumes(self.state_dir, self.engine)

    def container_name(self, pod: str, container: str) -> str:
        """`<pod>.<container>.<scope>`: the scope is the state directory's, so two state directories (two CI jobs
        on one engine) hold two independent sets, even of one rendering."""
        return f"{pod}.{container}.{self.state_dir.scope}"

    def blueprint(self, state: SetState, ordinal: int) -> PodBlueprint:
        return pod_blueprint(state.workload_of(pod_name(state.name, ordinal)), state.name, state.namespace, ordinal)

    # ------------------------------------------------------------------ one pod
    def _sandbox(self, state: SetState, pod: PodBlueprint) -> Any:
        shm_size = pod.shm_size or pod.container.memory_limit or DEFAULT_SHM
        user = None if pod.run_as_user is None else (
            f"{pod.run_as_user}:{pod.run_as_group}" if pod.run_as_group is not None else str(pod.run_as_user))
        sandbox = self.engine.create(
            pod.container.image, self.container_name(pod.name, SANDBOX),
            entrypoint=["python3", "-c", _PAUSE], command=[], hostname=pod.name, user=user,
            ipc_mode="shareable", shm_size=shm_size, read_only=True, cap_drop=["ALL"], network=state.network,
            # The pod's network is the sandbox's: its container ports, on a free loopback port each.
            ports={f"{port}/tcp": ("127.0.0.1", None) for port in pod.container.ports} or None,
            security_opt=["no-new-privileges"], restart_policy={"Name": "unless-stopped"}, platform=state.platform,
            labels=pod_labels(self.state_dir, state, pod, SANDBOX, SANDBOX),
        )
        self.engine.start(sandbox)
        return sandbox

    def _container_options(self, state: SetState, pod: PodBlueprint, plan: ContainerPlan, role: str,
                           sandbox_name: str) -> dict[str, Any]:
        tmpfs = {}
        for mount in plan.mounts:
            volume = pod.volumes[mount.volume]
            if volume.kind == VolumeKind.TMPFS:
                tmpfs[mount.target] = f"size={volume.size},mode=1777" if volume.size else "mode=1777"
        security = ["no-new-privileges"] if plan.no_new_privileges else []
        options: dict[str, Any] = {
            "binds": self.volumes.mount_sources(pod, plan.mounts),
            "entrypoint": plan.entrypoint, "command": plan.args, "working_dir": plan.working_dir,
            # envFrom first, env over it, as a kubelet does.
            "environment": [f"{key}={value}" for key, value in
                            (secret_values(plan.secrets, state.secrets, pod.name) | plan.env).items()],
            "user": plan.user, "group_add": [str(g) for g in plan.group_add] or None,
            "read_only": plan.read_only, "cap_drop": plan.cap_drop or None, "cap_add": plan.cap_add or None,
            "security_opt": security or None, "tmpfs": tmpfs or None,
            "ipc_mode": f"container:{sandbox_name}", "network_mode": f"container:{sandbox_name}",
            "labels": pod_labels(self.state_dir, state, pod, role, plan.name),
            "platform": state.platform,  # `up --platform`: the image is that platform's (platform_images.py)
        }
        if plan.memory_limit:
            options["mem_limit"] = plan.memory_limit
            options["memswap_limit"] = plan.memory_limit  # no swap, as on a kubelet
        if plan.nano_cpus:
            options["nano_cpus"] = plan.nano_cpus
        return options

    def create_pod(self, state: SetState, pod: PodBlueprint) -> None:
        """Sandbox, init containers to completion, then the pipeline container, started."""
        for image in {pod.container.image, *(init.image for init in pod.init_containers)}:
            self.engine.ensure_image(image, state.platform)
        self.remove_containers(pod.name)
        self.volumes.prepare(pod)
        sandbox = self._sandbox(state, pod)
        for init in pod.init_containers:
            options = self._container_options(state, pod, init, "init", sandbox.name)
            container = self.engine.create(init.image, self.container_name(pod.name, init.name), **options)
            try:
                self.engine.start(container)
                code = self.engine.wait(container, INIT_TIMEOUT)
                logs = self.engine.logs(container, tail=5).strip()
            finally:
                self.engine.remove(container)
            if code != 0:
                last = logs.splitlines()[-1] if logs else "no output"
                raise PodFailed(f"pod {pod.name}: init container {init.name} exited {code}: {last} "
                                f"(the rendered pod would stop there too; fix the rendering)")
        self._start_pipeline(state, pod)

    def _start_pipeline(self, state: SetState, pod: PodBlueprint) -> None:
        """The pipeline container, joined to the pod's sandbox, started."""
        # Parameters reach the runtime as arguments, after any the template gives.
        plan = pod.container
        args = [*(plan.args or []), *(f"--param={key}={value}" for key, value in sorted(state.params.items()))]
        options = self._container_options(state, pod, plan, "container", self.container_name(pod.name, SANDBOX))
        options["command"] = args or None
        options["restart_policy"] = {"Name": _RESTART.get(pod.restart_policy, "always")}
        container = self.engine.create(plan.image, self.container_name(pod.name, plan.name), **options)
        self.engine.start(container)

    def replace_pipeline(self, state: SetState, pod: PodBlueprint) -> int:
        """An in-place update: the pipeline container stopped (SIGTERM, then SIGKILL after the pod's
        terminationGracePeriodSeconds) and made again from the pod's new template in the same sandbox, so
        shm, the SSD and the PV stay; init containers do not run again. Returns the restarts the engine
        had counted for the old container (a new container counts from 0)."""
        self.engine.ensure_image(pod.container.image, state.platform)
        old = self.engine.get(self.container_name(pod.name, pod.container.name))
        counted = 0
        if old is not None:
            counted = self.engine.state(old.name).restart_count
            self.engine.stop(old, pod.grace_seconds)
            self.engine.remove(old)
        self._start_pipeline(state, pod)
        return counted

    def remove_containers(self, pod_name: str, grace_seconds: int | None = None) -> None:
        """The pod's containers, pipeline first (it lives in the sandbox's namespaces), then the sandbox."""
        found = self.engine.find({**self.state_dir.labels_any(), LABEL_POD: pod_name})
        found.sort(key=lambda c: c.labels.get(LABEL_ROLE) == SANDBOX)
        for container in found:
            if grace_seconds is not None and container.labels.get(LABEL_ROLE) == "container":
                self.engine.stop(container, grace_seconds)
            self.engine.remove(container)

    def remove_pod(self, pod: PodBlueprint, grace_seconds: int | None = None) -> None:
        self.remove_containers(pod.name, grace_seconds)
        self.volumes.forget_pod(pod)

    def pod_is_whole(self, pod: PodBlueprint) -> bool:
        sandbox = self.engine.state(self.container_name(pod.name, SANDBOX))
        container = self.engine.state(self.container_name(pod.name, pod.container.name))
        return sandbox.running and container.status != "missing"


def down(state_root: Path | None, grace_seconds: int | None, delete_data: bool) -> dict[str, Any]:
    """Stop and remove every container of the set; claims and the node's directories stay unless delete_data."""
    state_dir = find_state_dir(state_root, left_over=delete_data)
    if not state_dir.root.is_dir():
        return _down(state_dir, grace_seconds, delete_data)
    with state_dir.locked():
        return _down(state_dir, grace_seconds, delete_data)


def _down(state_dir: StateDir, grace_seconds: int | None, delete_data: bool) -> dict[str, Any]:
    state = state_dir.load() if state_dir.exists() else None
    engine = Engine()
    pods = PodSet(state_dir, engine)
    containers = engine.find(state_dir.labels_any())
    pod_names = sorted({c.labels.get(LABEL_POD, "") for c in containers} - {""})
    grace = grace_seconds
    if grace is None and state is not None and state.ordinals:
        grace = pods.blueprint(state, state.ordinals[0]).grace_seconds
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(pod_names)))) as pool:
        list(pool.map(lambda name: pods.remove_containers(name, grace), pod_names))
    image = state.workload["spec"]["template"]["spec"]["containers"][0]["image"] if state else None
    volumes = pods.volumes
    volumes.remove(None, state_dir.root / "pods", image)
    if delete_data:
        volumes.remove(None, state_dir.root, image)
    elif state_dir.file.exists():
        state_dir.file.unlink()
    return {"state_dir": str(state_dir.root), "name": state.name if state else None, "removed_pods": pod_names,
            "data_deleted": delete_data}
