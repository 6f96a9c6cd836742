"""A real Prometheus server (Debian's `prometheus`, installed by scripts/bootstrap.sh) for the tests:
started on 127.0.0.1 with a generated configuration, asked through its HTTP API."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import stop

PROMETHEUS = "prometheus"
SCRAPE_INTERVAL = "1s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of `expression` (`/api/v1/query`)."""
        status, body = http_get(f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': expression})}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", body
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(self, expression: str, accept: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
                 ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expression)
            if accept(result):
                return result
            time.sleep(0.5)
        targets = http_get(f"{self.base}/api/v1/targets")[1]
        raise AssertionError(f"{expression}: last result {result}; targets {targets[:2000]}")


@contextmanager
def prometheus_scraping(targets: list[str], workdir: Path) -> Iterator[Prometheus]:
    """A Prometheus scraping `targets` (host:port) every second; stopped (and its data removed) after."""
    binary = shutil.which(PROMETHEUS) or (Path("/usr/bin") / PROMETHEUS).as_posix()
    if not Path(binary).exists():
        pytest.skip("Debian's prometheus is not installed (scripts/bootstrap.sh installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": "imagekit", "scrape_interval": SCRAPE_INTERVAL,
                            "static_configs": [{"targets": targets}]}],
    }))
    port = free_port()
    log = open(workdir / "prometheus.log", "w")  # noqa: SIM115 - open while the server runs
    server = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                               f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (_answers(port) and http_get(f"http://127.0.0.1:{port}/-/ready", timeout=1)[0] == 200):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Prometheus(port)
    finally:
        stop(server)
        log.close()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
