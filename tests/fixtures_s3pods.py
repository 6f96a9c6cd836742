"""S3 for emulated pods: a Docker network of the test run's own, moto's S3 server on its gateway (the host, as
the pods see it), and the s3-sum pipeline's image built once per run. Star-imported by conftest.py.

Traffic stays on this machine: the server listens on the gateway of a bridge network these fixtures create,
and only the pods on that network (and the test process) talk to it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fixtures_engine import build_test_image
from fixtures_s3 import MotoS3, start_moto_s3

__all__ = ["S3_SUM_PIPELINE", "S3Network", "s3_network", "s3_sum_image"]

S3_SUM_PIPELINE = Path(__file__).resolve().parent / "data" / "pipelines" / "s3-sum"


@dataclass(frozen=True)
class S3Network:
    network: str  # the Docker network pods join (`imagekit pod up --network`)
    gateway: str  # its gateway address: the host, where the server listens
    server: MotoS3


@pytest.fixture(scope="session")
def s3_network(docker_client: Any) -> Iterator[S3Network]:
    """A bridge network of this run's own, and moto's S3 server listening on its gateway."""
    name = f"imagekit-test-s3-{os.getpid()}"
    for stale in docker_client.networks.list(names=[name]):
        stale.remove()
    network = docker_client.networks.create(name, driver="bridge")
    try:
        network.reload()
        gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
        with start_moto_s3(gateway) as server:
            yield S3Network(name, gateway, server)
    finally:
        network.remove()


@pytest.fixture(scope="session")
def s3_sum_image(engine_ready: None, build_env: dict[str, str]) -> str:
    """tests/data/pipelines/s3-sum built once per run: numbers from s3 per shard, their sum sunk back."""
    return build_test_image(S3_SUM_PIPELINE, "s3-sum", build_env)
