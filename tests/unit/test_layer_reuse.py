"""The pieces of layer reuse (build --cache-from) without a registry: layer keys, the labels that carry them,
where each layer of a push comes from, and blobs that are the same bytes for the same layer."""
from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path, PurePosixPath

import pytest
import zstandard

from imagekit.build.assembly import BaseImage, NewLayer, assemble
from imagekit.build.builder import labelled_layer
from imagekit.build.bytecode import Compiler
from imagekit.build.deps import deps_layer_key
from imagekit.build.labels import ImageLabels, layer_labels
from imagekit.build.lock import Lock
from imagekit.build.plan import PlannedLayer
from imagekit.build.reuse import Blob, NoCache, RemoteLayer
from imagekit.build.tarball import Entry, LayerTar, write_layer
from imagekit.build.wheels import PythonTarget
from imagekit.publish.image_push import Compression, compress_layer, sources
from imagekit_core import contract
from imagekit_core.spec.stepfiles import Kind

TARGET = PythonTarget(version="3.11")
LOCK = Lock(Path("requirements.lock"), "numpy==1.26.4 --hash=sha256:" + "a" * 64 + "\n")
COMPILER = Compiler("/usr/bin/python3.11", "3.11.7", "cpython-311")


def test_a_deps_layer_key_changes_with_whatever_changes_its_bytes() -> None:
    key = deps_layer_key("count", LOCK, TARGET, COMPILER)
    assert key.startswith("sha256:") and key == deps_layer_key("count", LOCK, TARGET, COMPILER)
    others = {
        deps_layer_key("tokenize", LOCK, TARGET, COMPILER),  # another place in the image
        deps_layer_key("count", Lock(LOCK.path, LOCK.text.replace("4 ", "5 ")), TARGET, COMPILER),
        deps_layer_key("count", LOCK, PythonTarget(version="3.12"), COMPILER),
        deps_layer_key("count", LOCK, PythonTarget(version="3.11", machine="aarch64"), COMPILER),
        deps_layer_key("count", LOCK, TARGET, Compiler("/usr/bin/python3.11", "3.11.8", "cpython-311")),
        deps_layer_key("count", LOCK, TARGET, None),  # no bytecode
    }
    assert key not in others and len(others) == 6


def test_the_layers_label_carries_a_deps_layers_key_size_and_tar_length(tmp_path: Path) -> None:
    tar = write_layer((), tmp_path / "deps.tar", [Entry(PurePosixPath("/opt/x"), Kind.file, content=b"x")])
    planned = PlannedLayer("deps-count", "deps", ("count",), (), 1, key="sha256:" + "b" * 64)
    code = PlannedLayer("code-count", "code", ("count",), (), 1)
    entries = [labelled_layer(planned, tar), labelled_layer(code, tar)]
    labels = layer_labels(entries, 3, (), ["count"])
    read = ImageLabels.read(labels)
    deps, code_layer = read.layers
    assert (deps.key, deps.size, deps.tar_bytes) == (planned.key, 1, tar.path.stat().st_size)
    assert (code_layer.key, code_layer.tar_bytes) == ("", 0)  # only deps layers are looked up by key
    remote = RemoteLayer(tar.sha256, 1, 5120, Blob("r", "p", "sha256:" + "c" * 64, 9, "x"))
    assert labelled_layer(planned, remote)["tar_bytes"] == 5120  # a reused layer is named as it was


@pytest.mark.parametrize("compression", list(Compression))
def test_a_layercompress_layeres_to_the_same_blob_every_time(tmp_path: Path, compression: Compression,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tar = write_layer((), tmp_path / "layer.tar", [Entry(PurePosixPath("/opt/x"), Kind.file, content=b"x" * 5000)])
    blobs = []
    for attempt in ("one", "two"):
        monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / attempt))
        blobs.append(compress_layer(tar, compression))
    assert blobs[0].digest == blobs[1].digest == "sha256:" + hashlib.sha256(blobs[0].path.read_bytes()).hexdigest()
    data = blobs[0].path.read_bytes()
    if compression is Compression.gzip:
        assert data[4:8] == b"\0\0\0\0" and gzip.decompress(data) == tar.path.read_bytes()  # no time in it
    else:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(data) == tar.path.read_bytes()


class FakeCache(NoCache):
    """Blobs a cache image holds, by diff ID."""

    def __init__(self, blobs: dict[str, Blob]) -> None:
        self.blobs = blobs

    def blob(self, diff_id: str) -> Blob | None:
        return self.blobs.get(diff_id)


def test_each_layer_is_pushed_from_where_it_is_or_not_at_all(tmp_path: Path) -> None:
    base_diff = "sha256:" + "1" * 64
    config = {"rootfs": {"type": "layers", "diff_ids": [base_diff]}, "config": {}}
    base = BaseImage("sha256:" + "2" * 64, config, (10,))
    local = write_layer((), tmp_path / "code.tar", [Entry(PurePosixPath("/opt/y"), Kind.file, content=b"y")])
    reused_blob = Blob("reg", "repo", "sha256:" + "3" * 64, 7, "application/vnd.oci.image.layer.v1.tar+gzip")
    reused = RemoteLayer("sha256:" + "4" * 64, 1, 2048, reused_blob)
    image = assemble(base, (NewLayer("deps-a", "deps", reused), NewLayer("code-a", "code", local)), {}, "x")
    base_blob = Blob("reg", "repo", "sha256:" + "5" * 64, 9, "application/vnd.docker.image.rootfs.diff.tar.gzip")
    found = sources(image, FakeCache({base_diff: base_blob}))
    assert found == [("base-0", base_blob), ("deps-a", reused_blob), ("code-a", local)]
    assert sources(image, FakeCache({})) is None  # the base's layer is nowhere: the engine pushes instead
    assert isinstance(found[2][1], LayerTar)
    assert json.loads(image.config)["rootfs"]["diff_ids"] == [base_diff, reused.sha256, local.sha256]
