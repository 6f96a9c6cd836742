"""Docker and the object store for the benchmark: images, one network, one volume, containers, a local
S3 server, and cleaning all of them up (everything it creates is named imagekit-bench-<pid>-…).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imagekit_core import contract

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BASE_IMAGE = "imagekit/debian-python:bookworm"
HANDOFF_IMAGE = "imagekit-bench/handoff:latest"            # the consumer is warm
HANDOFF_COLD_IMAGE = "imagekit-bench/handoff-cold:latest"  # the same consumer, not warm
UID = contract.RUNTIME_UID  # the step user of the images
LAUNCH_IMAGE = "imagekit-bench/launch20:latest"
LAUNCH_WARM_IMAGE = "imagekit-bench/launch20-warm:latest"
TOOLS_IMAGE = "imagekit-bench/paradigms:latest"
BUCKET = "imagekit-bench"


class BenchError(RuntimeError):
    pass


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and completed.returncode != 0:
        raise BenchError(f"docker {' '.join(args[:6])}… failed ({completed.returncode}): {completed.stderr.strip()[-800:]}")
    return completed


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ images
def build_pipeline_image(pipeline: Path, tag: str) -> str:
    """`imagekit build` (the real build path); a plain Containerfile with the same runtime, environment,
    user and entrypoint if the build path is unavailable. Returns how it was built."""
    command = [sys.executable, "-m", "imagekit.cli.main", "build", str(pipeline), "--tag", tag, "--backend", "docker",
               "--base", BASE_IMAGE, "--output", "json"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=REPO)
    if completed.returncode == 0:
        return "imagekit build"
    log(f"bench: imagekit build {pipeline.name} failed ({completed.returncode}); building it with a plain "
        f"Containerfile instead:\n{completed.stderr.strip()[-600:]}")
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-ctx-") as context:
        for package in (REPO / "runtime" / "imagekit_runtime", REPO / "core" / "imagekit_core"):
            shutil.copytree(package, Path(context) / "runtime" / package.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(pipeline, Path(context) / "pipeline")
        (Path(context) / "Containerfile").write_text(f"""\
FROM {BASE_IMAGE}
RUN id imagekit >/dev/null 2>&1 || useradd --uid {UID} --create-home imagekit
COPY runtime/ {contract.IMAGE_RUNTIME_DIR}/
COPY pipeline/ {contract.IMAGE_PIPELINE_DIR}/
ENV PYTHONPATH={contract.IMAGE_RUNTIME_DIR} {contract.DEPS_ROOT}={contract.IMAGE_DEPS_ROOT} PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER {UID}:{UID}
ENTRYPOINT ["python3", "-m", "imagekit_runtime", "run", "{contract.IMAGE_PIPELINE_FILE}"]
""")
        docker("build", "-q", "-t", tag, "-f", str(Path(context) / "Containerfile"), context, timeout=900)
    return "Containerfile (fallback)"


def build_tools_image() -> None:
    """The handoff image plus work.py/net.py/rpcprobe.py in /opt/bench and a /store owned by the step user: the same
    runtime, interpreter and step code for the other paradigms."""
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-ctx-") as context:
        for name in ("work.py", "net.py", "rpcprobe.py"):
            shutil.copyfile(HERE / name, Path(context) / name)
        (Path(context) / "Containerfile").write_text(f"""\
FROM {HANDOFF_IMAGE}
USER 0:0
RUN mkdir -p /store /data && chown {UID}:{UID} /store /data
COPY work.py net.py rpcprobe.py /opt/bench/
USER {UID}:{UID}
ENTRYPOINT []
""")
        docker("build", "-q", "-t", TOOLS_IMAGE, "-f", str(Path(context) / "Containerfile"), context, timeout=900)


# --------------------------------------------------------------- resources
@dataclass
class Resources:
    prefix: str = field(default_factory=lambda: f"imagekit-bench-{os.getpid()}")
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen] = field(default_factory=list)
    directories: list[Path] = field(default_factory=list)

    def network(self) -> tuple[str, str]:
        """A bridge network of our own; returns (name, gateway address: the host, as containers see it)."""
        name = f"{self.prefix}-net"
        docker("network", "create", "--driver", "bridge", name)
        self.networks.append(name)
        info = json.loads(docker("network", "inspect", name).stdout)[0]
        return name, info["IPAM"]["Config"][0]["Gateway"]

    def volume(self) -> tuple[str, Path]:
        name = f"{self.prefix}-vol"
        docker("volume", "create", name)
        self.volumes.append(name)
        return name, Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", name).stdout.strip())

    def container(self, suffix: str, *args: str) -> str:
        """Start a detached container (not --rm: its logs are read after it exits); removed at cleanup."""
        name = f"{self.prefix}-{suffix}"
        docker("rm", "-f", name, check=False)
        self.containers.append(name)
        docker("run", "-d", "--name", name, *args)
        return name

    def tempdir(self, label: str) -> Path:
        """A directory on the host's tmpfs, writable by the step user (uid 10001) of the images."""
        path = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-{label}-", dir="/dev/shm"))
        path.chmod(0o777)
        self.directories.append(path)
        return path

    def remove_container(self, name: str) -> None:
        docker("rm", "-f", name, check=False)
        if name in self.containers:
            self.containers.remove(name)

    def cleanup(self) -> None:
        for name in list(self.containers):
            self.remove_container(name)
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        for name in self.networks:
            docker("network", "rm", name, check=False)
        for name in self.volumes:
            docker("volume", "rm", "-f", name, check=False)
        for path in self.directories:
            shutil.rmtree(path, ignore_errors=True)
        self.containers, self.networks, self.volumes, self.processes, self.directories = [], [], [], [], []


def container_address(name: str, network: str) -> str:
    return docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', name).stdout.strip()


def wait_for_log(name: str, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = docker("logs", name, check=False)
        if text in logs.stdout:
            return
        state = docker("inspect", "-f", "{{.State.Running}}", name, check=False).stdout.strip()
        if state == "false":
            raise BenchError(f"container {name} exited: {logs.stdout[-400:]} {logs.stderr[-400:]}")
        time.sleep(0.1)
    raise BenchError(f"container {name} did not print {text!r} within {timeout}s")


# ------------------------------------------------------------ object store
def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def start_object_store(resources: Resources, address: str) -> tuple[str | None, str]:
    """moto's S3 server (pip install 'moto[server]') on `address`; returns (endpoint or None, description)."""
    try:
        import moto  # noqa: F401
        from moto import server  # noqa: F401
    except ImportError as exc:
        return None, f"no S3 store: moto's server is not installed ({exc}); pip install 'moto[server]'"
    port = free_port(address)
    with open(Path(resources.tempdir("moto")) / "moto.log", "w") as log_file:  # the server keeps its own descriptor
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", address, "-p", str(port)],
                                   stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    resources.processes.append(process)
    endpoint = f"http://{address}:{port}"
    sys.path.insert(0, str(HERE))
    import net
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, f"no S3 store: moto's server exited ({process.returncode}), see {log_file.name}"
        try:
            if net.s3_simple(endpoint, "PUT", f"/{BUCKET}") == 200:
                import moto as moto_module
                return endpoint, f"moto {moto_module.__version__} S3 server (in memory) on the host, at the network's gateway"
        except OSError:
            time.sleep(0.2)
    return None, "no S3 store: moto's server did not answer within 30 s"
