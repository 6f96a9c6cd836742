"""The Docker backend reads a base's stored config from the engine's image store when it can (a cold
build then skips `docker save`), and from `docker save` otherwise: the same bytes either way."""
from __future__ import annotations

import hashlib
from typing import Any

import pytest

from imagekit.build.docker import DockerBackend

pytestmark = pytest.mark.docker


def test_the_config_read_from_the_store_is_the_one_docker_save_gives(base_image_tag: str) -> None:
    backend = DockerBackend()
    backend.check()
    image_id = backend.image_id(base_image_tag)
    assert image_id
    on_disk = backend._config_on_disk(image_id)
    assert on_disk is not None, "root with the engine on this machine: the store is readable"
    assert "sha256:" + hashlib.sha256(on_disk).hexdigest() == image_id
    assert on_disk == backend._config_from_save(image_id)


def test_an_unreadable_store_falls_back_to_docker_save(base_image_tag: str, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Any) -> None:
    backend = DockerBackend()
    backend.check()
    image_id = backend.image_id(base_image_tag)
    assert image_id
    # Another engine's store (a remote DOCKER_HOST): nothing there, or a file that isn't this config.
    fake = tmp_path / "image" / "overlay2" / "imagedb" / "content" / "sha256" / image_id.removeprefix("sha256:")
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b'{"not": "the config"}')
    monkeypatch.setattr(backend.client, "info", lambda: {"DockerRootDir": str(tmp_path), "Driver": "overlay2"})
    assert backend._config_on_disk(image_id) is None
    assert "sha256:" + hashlib.sha256(backend._saved_config(image_id)).hexdigest() == image_id
