"""engine.connect: the client speaks the API version the engine's ping announces (no /version round trip,
which makes dockerd run two programs), falls back to the SDK's own negotiation when a ping carries no
version, and names the fix when nothing answers."""
from __future__ import annotations

import http.server
import socket
import socketserver
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import serving
from imagekit_core import engine
from imagekit_core.errors import EnvironmentMissing


class _Engine(http.server.BaseHTTPRequestHandler):
    """An engine that answers a ping without an Api-Version header, and /version."""

    asked: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.asked.append(self.path)
        body = b"OK" if self.path.endswith("/_ping") else b'{"ApiVersion": "1.41", "Version": "20.10.24"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, _ = self.socket.accept()
        return connection, ("local", 0)  # http.server formats client_address as (host, port)


@pytest.fixture
def versionless_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    socket_path = tmp_path / "engine.sock"
    _Engine.asked = []
    monkeypatch.setenv("DOCKER_HOST", f"unix://{socket_path}")
    with serving(_UnixServer(str(socket_path), _Engine)):
        yield _Engine.asked


def test_a_ping_without_a_version_falls_back_to_asking_the_engine(versionless_engine: list[str]) -> None:
    client = engine.connect(timeout=5)
    assert client.api._version == "1.41"
    assert versionless_engine[0] == "/_ping"
    assert any(path.endswith("/version") for path in versionless_engine)


def test_nothing_answering_names_the_socket_and_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EnvironmentMissing, match=r"no Docker engine answers at unix://.*none\.sock.*apt-get install docker\.io"):
        engine.connect(timeout=5)


@pytest.mark.docker
def test_the_client_speaks_the_version_the_engine_announces() -> None:
    client = engine.connect(timeout=30)
    assert client.api._version == client.version()["ApiVersion"]
    assert client.api.inspect_image  # and works: the engine answers a versioned call
    assert client.api.images(quiet=True) is not None
