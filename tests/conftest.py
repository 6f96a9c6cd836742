"""Shared test helpers: real pipelines written to temporary directories, run as real processes."""
from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import socketserver
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagekit_core import contract
from imagekit_runtime.observe.journal import read_journal, runs_in, steps_started

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "pipelines"

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.stdout)


# The one way tests run the `imagekit` CLI: a separate process, as a user would, importing this checkout.
Argument = str | os.PathLike[str]
Environment = Mapping[str, str | None]  # on top of this process's environment; None unsets a variable


def imagekit_argv(*args: Argument) -> list[str]:
    return [sys.executable, "-m", "imagekit.cli.main", *map(str, args)]


def cli_environment(env: Environment | None = None) -> dict[str, str]:
    merged: dict[str, str | None] = {**os.environ, **(env or {})}
    return {key: value for key, value in merged.items() if value is not None}


def imagekit(*args: Argument, timeout: float = 600, env: Environment | None = None, cwd: Path = REPO) -> RunResult:
    """Run the real `imagekit` CLI to the end; never raises on its exit status."""
    completed = subprocess.run(imagekit_argv(*args), capture_output=True, text=True, timeout=timeout,
                               env=cli_environment(env), cwd=cwd)
    return RunResult(completed.returncode, completed.stdout, completed.stderr)


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve a server a test made in-process (a fake registry, engine or web server) on a daemon thread for the
    block; shut it down and close its socket afterwards."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """End a process a test started (a server): SIGTERM, then SIGKILL when it has not ended within timeout s."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_imagekit(*args: Argument, env: Environment | None = None, cwd: Path = REPO) -> subprocess.Popen[str]:
    """Start the real `imagekit` CLI in the background, stdout and stderr piped, for a test to watch or signal."""
    return subprocess.Popen(imagekit_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_environment(env), cwd=cwd)


@dataclass
class Locations:
    """Per-test shm, SSD, PV and results directories, passed to every run."""
    root: Path

    @property
    def shm(self) -> Path:
        return self.root / "shm"

    @property
    def ssd(self) -> Path:
        return self.root / "ssd"

    @property
    def pv(self) -> Path:
        return self.root / "pv"

    @property
    def results(self) -> Path:
        return self.root / "results"

    def args(self) -> list[str]:
        return ["--shm-dir", str(self.shm), "--ssd", str(self.ssd), "--pv", str(self.pv),
                "--results", str(self.results)]

    def data_root(self, pipeline: str, shard: int = 0) -> Path:
        return self.shm / pipeline / f"shard-{shard}"

    def journal(self, pipeline: str, shard: int = 0) -> Path:
        return self.data_root(pipeline, shard) / contract.RUN_DIR_NAME / contract.JOURNAL_FILE


@pytest.fixture
def locations(tmp_path: Path) -> Iterator[Locations]:
    # shm under /dev/shm, as in production: real shared memory, cleaned after the test.
    shm_root = Path("/dev/shm") / f"imagekit-test-{os.getpid()}-{tmp_path.name}"
    loc = Locations(tmp_path)
    (tmp_path / "shm").symlink_to(shm_root, target_is_directory=True)
    shm_root.mkdir(parents=True, exist_ok=True)
    yield loc
    subprocess.run(["rm", "-rf", str(shm_root)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a real tmpfs of a given size (you are root): `tmpfs("4m")` -> its path, unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        mount_point = tmp_path / f"tmpfs-{len(mounted)}-{size}"
        mount_point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(mount_point)
        return mount_point

    yield mount
    for mount_point in mounted:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


TEST_USER = "imagekit-tester"


@pytest.fixture(scope="session")
def tester() -> Any:
    """A normal user (in the docker group), made once: for what must be tried without root's powers."""
    if os.getuid() != 0:
        pytest.skip("makes a user of its own: run as root")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        groups = ["--groups", "docker"] if _group_exists("docker") else []
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", *groups, TEST_USER], check=True)
        return pwd.getpwnam(TEST_USER)


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def write_step(directory: Path, name: str, script: str, *, inputs: Sequence[str] = (), outputs: Sequence[str] = (),
               shell: bool = True, retries: int = 0, requirements: str | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    """A step package: step.yaml plus run.sh (or main.py when shell=False)."""
    step_dir = directory / name
    step_dir.mkdir(parents=True)
    config: dict[str, Any] = {"name": name, "command": ["sh", "run.sh"] if shell else ["python3", "main.py"]}
    if inputs:
        config["inputs"] = list(inputs)
    if outputs:
        config["outputs"] = list(outputs)
    if retries:
        config["retries"] = retries
    if requirements is not None:
        (step_dir / "requirements.txt").write_text(requirements)
        config["requirements"] = "requirements.txt"
    config.update(extra or {})
    (step_dir / "step.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (step_dir / ("run.sh" if shell else "main.py")).write_text(textwrap.dedent(script).lstrip())
    return step_dir


def write_pipeline(directory: Path, name: str, steps: list[str], **settings: Any) -> Path:
    config: dict[str, Any] = {"name": name, "steps": [f"steps/{s}" for s in steps], "shm": "256Mi",
                              "parallelism": 2, **settings}
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def journal_entries(path: Path) -> list[dict[str, Any]]:
    return list(read_journal(path))


def last_run(path: Path) -> list[dict[str, Any]]:
    return list(read_journal(path, runs_in(path)[-1]))


def started_steps(path: Path) -> list[str]:
    """Steps whose process started in the newest run of this journal."""
    return steps_started(path, runs_in(path)[-1])


# Engine fixtures (docker, registry, base image), only where the build path is present. Imported last:
# they run the CLI through `imagekit` above.
try:
    from fixtures_cluster import *  # noqa: F403
    from fixtures_engine import *  # noqa: F403
    from fixtures_pods import *  # noqa: F403
    from fixtures_s3pods import *  # noqa: F403
except ImportError as exc:  # pragma: no cover
    if "fixtures_engine" not in str(exc):
        raise
