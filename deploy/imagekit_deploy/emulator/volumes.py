"""Where each pod volume lives on this machine, and for how long (see state.py for the layout).

    emptyDir, medium Memory, at /dev/shm   the sandbox's /dev/shm: survives container restarts, not the pod
    emptyDir, medium Memory, elsewhere     a tmpfs of the container
    emptyDir on disk                        <state>/pods/<pod>/<volume>, mode 0777: removed with the pod
    hostPath                                <state>/node/<path>: the node's disk, removed only with the node
    volumeClaimTemplate claim               <state>/claims/<claim>: retained, group fsGroup, setgid,
                                            as a kubelet applies fsGroup to a volume

Files the runtime writes belong to uid 10001; when this process may not chown or remove
them (not root), a short-lived root helper container of the pod's image does it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from imagekit_core.errors import CommandFailed

from .blueprint import Mount, PodBlueprint, Volume, VolumeKind
from .engine import Engine
from .state import LABEL_ROLE, StateDir

_CHOWN = ("import os, sys; path, uid, gid, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4], 8); "
          "os.chown(path, uid, gid); os.chmod(path, mode)")
_REMOVE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"
_HELPER_MOUNT = "/host"


class HostVolumes:
    def __init__(self, state_dir: StateDir, engine: Engine) -> None:
        self.state_dir = state_dir
        self.engine = engine

    def home(self, pod: PodBlueprint, volume: Volume) -> Path | None:
        """The host directory of a volume; None for memory-backed ones."""
        if volume.kind == VolumeKind.EMPTY_DIR:
            return self.state_dir.pod_dir(pod.name) / volume.name
        if volume.kind == VolumeKind.HOST_PATH:
            return self.state_dir.node / volume.source.lstrip("/")
        if volume.kind == VolumeKind.CLAIM:
            return self.state_dir.claims / volume.source
        return None

    def source(self, pod: PodBlueprint, mount: Mount) -> Path | None:
        home = self.home(pod, pod.volumes[mount.volume])
        if home is None:
            return None
        return home / mount.sub_path if mount.sub_path else home

    def host_path(self, pod: PodBlueprint, container_path: str) -> Path | None:
        """A path of the pipeline container as a path on this machine (None when not on a host volume)."""
        found = pod.volume_at(container_path)
        if found is None:
            return None
        mount, below = found
        source = self.source(pod, mount)
        return None if source is None else (source / below if below != "." else source)

    def prepare(self, pod: PodBlueprint) -> None:
        """Create what the kubelet would have before the pod's containers start."""
        for volume in pod.volumes.values():
            home = self.home(pod, volume)
            if home is None:
                continue
            fresh = not home.exists()
            home.mkdir(parents=True, exist_ok=True)
            if volume.kind == VolumeKind.EMPTY_DIR and fresh:
                self._set_mode(pod, home, -1, 0o777)
            elif volume.kind == VolumeKind.CLAIM:
                # fsGroupChangePolicy OnRootMismatch: the claim's root gets the group, setgid and g+rwx.
                info = home.stat()
                if pod.fs_group is None:
                    if fresh:
                        self._set_mode(pod, home, -1, 0o777)
                elif info.st_gid != pod.fs_group or info.st_mode & 0o2070 != 0o2070:
                    mode = 0o2775 if fresh else (info.st_mode & 0o7777) | 0o2070
                    self._set_mode(pod, home, pod.fs_group, mode)
            elif volume.kind == VolumeKind.HOST_PATH and fresh and os.getuid() != 0:
                # hostPath DirectoryOrCreate: 0755 root, as the kubelet makes it (an init container hands it
                # on); made by a normal user, it is that user's until a root helper hands it to root.
                self._set_mode(pod, home, -1, 0o755, uid=0)

    def mount_sources(self, pod: PodBlueprint, mounts: list[Mount]) -> list[tuple[str, str, bool]]:
        """Bind mounts (host, container, read only) of a container; sub-paths are created as the kubelet does."""
        binds = []
        for mount in mounts:
            source = self.source(pod, mount)
            if source is None:
                continue
            source.mkdir(parents=True, exist_ok=True)
            binds.append((str(source.resolve()), mount.target, mount.read_only))
        return binds

    def forget_pod(self, pod: PodBlueprint) -> None:
        """The pod's emptyDir volumes go with the pod."""
        self.remove(pod, self.state_dir.pod_dir(pod.name))

    def remove(self, pod: PodBlueprint | None, path: Path, image: str | None = None) -> None:
        if not path.exists() and not path.is_symlink():
            return
        try:
            shutil.rmtree(path)
            return
        except PermissionError:
            pass
        helper = image or (pod.container.image if pod else None)
        if helper is None:
            raise CommandFailed(["rm", "-rf", str(path)], 1, "permission denied and no image for a root helper")
        self._helper(helper, path.parent, [_REMOVE, f"{_HELPER_MOUNT}/{path.name}"])

    def _set_mode(self, pod: PodBlueprint, path: Path, gid: int, mode: int, uid: int = -1) -> None:
        try:
            if gid >= 0 or uid >= 0:
                os.chown(path, uid, gid)
            os.chmod(path, mode)
        except PermissionError:
            self._helper(pod.container.image, path.parent,
                         [_CHOWN, f"{_HELPER_MOUNT}/{path.name}", str(uid), str(gid), oct(mode)[2:]])

    def _helper(self, image: str, parent: Path, script: list[str]) -> None:
        code, logs = self.engine.run_once(image, ["python3", "-c", *script], {str(parent.resolve()): _HELPER_MOUNT},
                                          {**self.state_dir.labels("helper"), LABEL_ROLE: "helper"})
        if code != 0:
            raise CommandFailed(["python3", "-c", script[0][:40]], code, logs)
