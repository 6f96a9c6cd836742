"""A token in the user's pip configuration or environment appears in no layer, config or history entry."""
from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fixtures_engine import SECRET_TOKEN, BuiltImage

pytestmark = pytest.mark.docker


def _contents(blob: bytes) -> bytes:
    return gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob


def _member_bytes(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The content of a regular file in a tar archive."""
    extracted = archive.extractfile(member)
    assert extracted is not None, f"{member.name} is not a regular file"
    return extracted.read()


def _find_token(name: str, blob: bytes, token: bytes) -> list[str]:
    """Where the token occurs in a blob, and in any tar inside it (layers), by member name."""
    found = []
    data = _contents(blob)
    if token in data:
        found.append(name)
    if tarfile.is_tarfile(io.BytesIO(data)):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if token in member.name.encode() or token in member.linkname.encode():
                    found.append(f"{name}:{member.name} (name)")
                if member.isfile():
                    content = _member_bytes(tar, member)
                    if token in content:
                        found.append(f"{name}:{member.name}")
                    if member.name.endswith(("pip.conf", "pip.ini", ".netrc")):
                        found.append(f"{name}:{member.name} (a pip configuration)")
    return found


def test_token_is_in_no_layer_or_history_of_the_docker_image(docker_client: Any, example_image_docker: BuiltImage,
                                                              tmp_path: Path) -> None:
    token = SECRET_TOKEN.encode()
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as out:
        for chunk in docker_client.images.get(example_image_docker.tag).save(named=True):
            out.write(chunk)
    found: list[str] = []
    with tarfile.open(archive) as saved:
        for member in saved:
            if member.isfile():
                found += _find_token(member.name, _member_bytes(saved, member), token)
    history = docker_client.api.history(example_image_docker.tag)
    assert token not in repr(history).encode()
    assert found == []
    # The check can see a token where there is one: the build's environment really had it.
    assert _find_token("probe", SECRET_TOKEN.encode(), token) == ["probe"]


@pytest.mark.slow  # 4 s or more
def test_token_is_in_no_blob_of_the_buildah_image(example_image_buildah: BuiltImage, tmp_path: Path) -> None:
    token = SECRET_TOKEN.encode()
    layout = tmp_path / "oci"
    subprocess.run(["buildah", "push", "--quiet", "--disable-compression", example_image_buildah.tag,
                    f"oci:{layout}"], check=True, capture_output=True)
    found: list[str] = []
    for blob in sorted((layout / "blobs" / "sha256").iterdir()):
        found += _find_token(blob.name, blob.read_bytes(), token)
    assert len(list((layout / "blobs" / "sha256").iterdir())) >= len(example_image_buildah.layers) + 2
    assert found == []
