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
        subprocess.run(["buildah", "pull", "--quiet", f"docker-daemon:{base}"], check=True, capture_output=True)
        subprocess.run(["buildah", "tag", f"docker.io/{base}", base], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["buildah", "rm", "--all"], capture_output=True)
        subprocess.run(["buildah", "rmi", "--all", "--force"], capture_output=True)
        graph = root / "graph" / "overlay"
        subprocess.run(["umount", str(graph)], capture_output=True)  # containers-storage bind-mounts it
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _private_dockerd(base: str, root: Path) -> Iterator[None]:
    socket = root / "docker.sock"
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)  # left by a bench run that was killed
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True, capture_output=True)
    subprocess.run(["ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE], check=True, capture_output=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True, capture_output=True)
    with open(root / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(
            [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
             "--host", f"unix://{socket}", "--pidfile", str(root / "docker.pid"),
             "--bridge", BRIDGE, "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(socket, daemon)
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
        subprocess.run(["umount", "--recursive", str(root / "exec")], capture_output=True)
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(socket: Path, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"the bench's dockerd exited {daemon.returncode}: see {socket.parent / 'dockerd.log'}")
        if socket.exists() and subprocess.run(["docker", "--host", f"unix://{socket}", "version"],
                                              capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the bench's dockerd did not answer within 60 s: see {socket.parent / 'dockerd.log'}")
