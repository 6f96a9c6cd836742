"""A real S3-protocol server for tests: moto's server in a process of its own (tests/moto_counting.py).

`start_moto_s3(host)` starts one on `host` (loopback by default; a Docker network's gateway so that
containers reach it), waits until it answers and yields a `MotoS3`; `moto_s3` is the session's, on loopback.
Credentials are moto's fake ones; `env()` gives what a client needs (AWS_ENDPOINT_URL and the rest).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import stop

SERVER = Path(__file__).resolve().parent / "moto_counting.py"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


@dataclass(frozen=True)
class MotoS3:
    endpoint: str  # http://HOST:PORT
    host: str
    port: int

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The standard AWS variables that point a client at this server (endpoint: as another network sees it)."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint or self.endpoint}

    def client(self) -> Any:
        import boto3
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=FAKE_CREDENTIALS["AWS_REGION"],
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def served(self) -> dict[str, int]:
        """Object GETs, their bytes and PUTs since the start or the last reset()."""
        with urllib.request.urlopen(f"{self.endpoint}/_imagekit/served", timeout=10) as answer:
            return dict(json.loads(answer.read()))

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/_imagekit/reset", method="POST"),
                               timeout=10).close()

    def bucket(self, name: str) -> str:
        """A fresh, empty bucket (created if need be, emptied if it exists)."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.BucketAlreadyOwnedByYou:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", []):
                    client.delete_object(Bucket=name, Key=item["Key"])
        return name


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@contextmanager
def start_moto_s3(host: str = "127.0.0.1", port: int | None = None, timeout: float = 30.0,
                  env: dict[str, str] | None = None) -> Iterator[MotoS3]:
    """moto's S3 server listening on host:port (a free port by default), until the block ends.
    env: more of moto's settings, e.g. INITIAL_NO_AUTH_ACTION_COUNT to enforce IAM after that many requests."""
    port = port or free_port(host)
    environment = {**os.environ, **FAKE_CREDENTIALS, "MOTO_PORT": str(port), **(env or {})}
    process = subprocess.Popen([sys.executable, str(SERVER), host, str(port)], env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = MotoS3(f"http://{host}:{port}", host, port)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto's server exited {process.returncode} before answering on {server.endpoint}")
            try:
                server.served()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not answer on {server.endpoint} in {timeout:g}s") from None
                time.sleep(0.1)
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    with start_moto_s3() as server:
        yield server
