"""transfer/s3.py against moto's real S3 server, in-process: ranged fetches, pinning, multipart and directory sinks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures_s3 import MotoS3, moto_s3  # noqa: F401 (the fixture)
from imagekit_core import contract
from imagekit_runtime.transfer import s3
from imagekit_runtime.transfer.manifest import Manifest, TransferFailed

MiB = 1 << 20


@pytest.fixture
def s3_env(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:  # noqa: F811
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    moto_s3.bucket("parts")
    return moto_s3


def probed(url: str, prefix: bool = False) -> Manifest:
    manifest = Manifest("source", "n", url, "s3", prefix)
    return Manifest("source", "n", url, "s3", prefix, s3.probe(manifest, s3.client()))


def test_a_large_object_is_fetched_in_ranges_byte_for_byte(s3_env: MotoS3, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3, "PART_BYTES", MiB)
    content = os.urandom(5 * MiB + 123)
    s3_env.client().put_object(Bucket="parts", Key="big", Body=content)
    s3_env.reset()
    assert s3.fetch(probed("s3://parts/big"), tmp_path / "big") == len(content)
    assert (tmp_path / "big").read_bytes() == content
    assert s3_env.served() == {"gets": 6, "get_bytes": len(content), "puts": 0}


def test_an_object_that_changed_after_the_plan_is_refused(s3_env: MotoS3, tmp_path: Path) -> None:
    s3_env.client().put_object(Bucket="parts", Key="moving", Body=b"first")
    manifest = probed("s3://parts/moving")
    s3_env.client().put_object(Bucket="parts", Key="moving", Body=b"second")
    with pytest.raises(TransferFailed, match=r"source n \(s3://parts/moving\): the object changed while it was fetched"):
        s3.fetch(manifest, tmp_path / "moving")


def test_a_prefix_with_an_empty_object_and_nested_keys(s3_env: MotoS3, tmp_path: Path) -> None:
    client = s3_env.client()
    for key, body in (("p/a", b"1"), ("p/empty", b""), ("p/x/y/z", b"22"), ("p/dir/", b"")):
        client.put_object(Bucket="parts", Key=key, Body=body)
    manifest = probed("s3://parts/p/", prefix=True)
    assert sorted(e.key for e in manifest.entries) == ["a", "empty", "x/y/z"]
    s3.fetch(manifest, tmp_path / "d")
    assert {p.relative_to(tmp_path / "d").as_posix(): p.read_bytes() for p in (tmp_path / "d").rglob("*")
            if p.is_file()} == {"a": b"1", "empty": b"", "x/y/z": b"22"}


def test_a_large_sink_is_one_multipart_object(s3_env: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3, "MULTIPART_BYTES", 20 * MiB)  # parts of 5 MiB, S3's least
    content = os.urandom(21 * MiB)
    (tmp_path / "out").write_bytes(content)
    s3.upload(Manifest("sink", "out", "s3://parts/results/", "s3", True), tmp_path / "out")
    head = s3_env.client().head_object(Bucket="parts", Key="results/out")
    assert head["ContentLength"] == len(content) and head["ETag"].endswith('-5"')


def test_a_directory_sink_rewrites_its_marker_last(s3_env: MotoS3, tmp_path: Path) -> None:
    data = tmp_path / "dir"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "f").write_text("x")
    manifest = Manifest("sink", "dir", "s3://parts/out/dir", "s3", False)
    assert s3.upload(manifest, data) == 1
    client = s3_env.client()
    keys = [item["Key"] for item in client.list_objects_v2(Bucket="parts", Prefix="out/")["Contents"]]
    assert sorted(keys) == ["out/dir/_SUCCESS", "out/dir/sub/f"]
    marker = client.head_object(Bucket="parts", Key=f"out/dir/{contract.SINK_SUCCESS_MARKER}")["LastModified"]
    assert marker >= client.head_object(Bucket="parts", Key="out/dir/sub/f")["LastModified"]
