"""An engine of the bench's own, holding nothing but the base image: what "cold" means for an engine.

Layers are content-addressed and imagekit's are deterministic, so the machine's own engine
usually holds every layer of the example already (the tests built it): a build there skips
applying them, which a first build on a CI machine can't. The bench therefore builds against
an engine that starts each round with the base image alone:

  buildah  a containers-storage of its own (CONTAINERS_STORAGE_CONF pointing at a storage.conf
           with its own graph and run roots), the base copied in from the machine's Docker engine
  docker   a second dockerd with its own data root, socket (DOCKER_HOST) and bridge (a dockerd started
           with `--bridge none` deletes docker0, the machine's engine's bridge), no iptables rules,
           the base loaded into it with `docker save | docker load`

Both backends pick these up from the environment; nothing else changes. The engine is stopped and
its files removed at the end.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from imagekit_core import proc

DOCKERD = "/usr/sbin/dockerd"  # Debian's, as scripts/bootstrap.sh starts it
BRIDGE = "imkbench0"  # the bench engine's own bridge: its build containers' network (nothing leaves it)
BRIDGE_ADDRESS = "172.31.254.1/24"


@contextlib.contextmanager
def private_engine(backend: str, base: str, root: Path) -> Iterator[None]:
    """Point this process's environment (and so the backend's engine calls) at an engine of its own,
    under root, holding base alone; restore the environment and remove the engine afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    try:
        if backend == "buildah":
            with _private_storage(base, root):
                yield
        else:
            with _private_dockerd(base, root):
                yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _private_storage(base: str, root: Path) -> Iterator[None]:
    conf = root / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\nrunroot = "{root / "run"}"\n')
    os.environ["CONTAINERS_STORAGE_CONF"] = str(conf)
    try:
        proc.run(["buildah", "pull", "--quiet", f"docker-daemon:{base}"])
        proc.run(["buildah", "tag", f"docker.io/{base}", base])
        yield
    finally:
        proc.run(["buildah", "rm", "--all"], check=False)
        proc.run(["buildah", "rmi", "--all", "--force"], check=False)
        graph = root / "graph" / "overlay"
        proc.run(["umount", str(graph)], check=False)  # containers-storage bind-mounts it
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _private_dockerd(base: str, root: Path) -> Iterator[None]:
    socket = root / "docker.sock"
    proc.run(["ip", "link", "delete", BRIDGE], check=False)  # left by a bench run that was killed
    proc.run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    proc.run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE])
    proc.run(["ip", "link", "set", BRIDGE, "up"])
    with open(root / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(
            [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--host", f"unix://{socket}", "--pidfile", str(root / "docker.pid"),
             "--bridge", BRIDGE, "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(socket, daemon)
        # A pipe between two processes (180 MB streamed), which proc.run does not make.
        saved = subprocess.Popen(["docker", "save", base], stdout=subprocess.PIPE)
        subprocess.run(["docker", "--host", f"unix://{socket}", "load", "--quiet"], stdin=saved.stdout, check=True,
                       capture_output=True)
        saved.wait()
        os.environ["DOCKER_HOST"] = f"unix://{socket}"
        yield
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        proc.run(["umount", "--recursive", str(root / "exec")], check=False)
        proc.run(["ip", "link", "delete", BRIDGE], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(socket: Path, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"the bench's dockerd exited {daemon.returncode}: see {socket.parent / 'dockerd.log'}")
        if socket.exists() and proc.run(["docker", "--host", f"unix://{socket}", "version"],
                                        check=False).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the bench's dockerd did not answer within 60 s: see {socket.parent / 'dockerd.log'}")
