"""The S3 client layer (imagekit/build/s3client.py), in process: a lock with hashes made from s3client.txt,
pure wheels only, a tree boto3 imports from with nothing else on the path, a deterministic layer, and a
plan that has the layer (first, under every step's) only when the pipeline uses s3.

The wheels come through the user's pip, as a build fetches them (cached in a temporary imagekit cache)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from imagekit.build.lock import input_digest
from imagekit.build.plan import plan_layers
from imagekit.build.s3client import IMAGE_DIR, LOCK, REQUIREMENTS, S3_CLIENT, client_lock, install_client
from imagekit.build.tarball import write_layer
from imagekit.build.wheels import PythonTarget
from imagekit_core import contract
from imagekit_core.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]
WORDFREQ = REPO / "pipelines" / "wordfreq"
CLIENT_PACKAGES = {"boto3", "botocore", "jmespath", "python-dateutil", "s3transfer", "six", "urllib3"}


def test_the_lock_is_current_pins_boto3_and_its_dependencies_with_hashes_and_pure_wheels():
    lock = client_lock()
    assert f"# input {input_digest(REQUIREMENTS)}" in lock.text  # s3client.txt changed: run `python -m imagekit.build.s3client`
    assert {pin.name for pin in lock.pins} == CLIENT_PACKAGES
    assert all(len(pin.hashes) >= 1 and all(len(h) == 64 for h in pin.hashes) for pin in lock.pins)
    assert LOCK.parent == REQUIREMENTS.parent == REPO / "imagekit" / "build"
    assert str(IMAGE_DIR) == contract.IMAGE_S3_CLIENT_DIR


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(contract.CACHE_DIR, str(cache))
        yield install_client(PythonTarget(version="3.11"))


def test_boto3_imports_from_the_tree_alone(client):
    """-S -I: no site-packages, no PYTHONPATH; only the tree is added, as the runtime adds the image's directory."""
    assert not list(client.tree.unpacked().rglob("__pycache__"))  # no bytecode from the host's interpreter
    code = (f"import sys; sys.path.insert(0, {str(client.tree.unpacked())!r}); import boto3, botocore, s3transfer; "
            "print(boto3.__file__); print(boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:9', "
            "aws_access_key_id='a', aws_secret_access_key='b').meta.endpoint_url)")
    completed = subprocess.run([sys.executable, "-B", "-S", "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    first, endpoint = completed.stdout.split()
    assert first.startswith(str(client.tree.unpacked())) and endpoint == "http://127.0.0.1:9"


def test_its_sbom_lists_every_package_with_the_locked_hash(client):
    import json

    document = json.loads((client.tree.sbom / f"{S3_CLIENT}.cdx.json").read_text())
    listed = {c["name"].lower().replace("_", "-"): c for c in document["components"]}
    assert set(listed) == CLIENT_PACKAGES
    hashes = {pin.name: pin.hashes for pin in client_lock().pins}
    assert all(listed[name]["hashes"][0]["content"] in hashes[name] for name in CLIENT_PACKAGES)


def test_the_layer_is_the_same_bytes_every_time_and_holds_the_tree_and_sbom(client, tmp_path):
    first = write_layer(client.mappings, tmp_path / "a.tar")
    second = write_layer(client.mappings, tmp_path / "b.tar")
    assert first.sha256 == second.sha256
    import tarfile

    with tarfile.open(first.path) as archive:
        names = set(archive.getnames())
    assert f"{str(IMAGE_DIR).lstrip('/')}/boto3/__init__.py" in names
    assert f"{contract.IMAGE_SBOM_DIR.lstrip('/')}/{S3_CLIENT}.cdx.json" in names


def s3_pipeline(tmp_path: Path) -> Path:
    """wordfreq with one s3 sink: the same steps, one more built-in step."""
    copy = tmp_path / "wordfreq"
    subprocess.run(["cp", "-r", str(WORDFREQ), str(copy)], check=True)
    with open(copy / "pipeline.yaml", "a") as spec:
        spec.write("sinks:\n  counts: s3://results/{pipeline}/{run}/shard-{shard}/counts\n")
    return copy


def test_the_plan_has_the_client_layer_first_only_for_s3_pipelines(client, tmp_path):
    plain = load_pipeline(WORDFREQ)
    with_s3 = load_pipeline(s3_pipeline(tmp_path))
    assert not plain.uses_s3 and with_s3.uses_s3
    files = tmp_path / "files"
    files.mkdir()
    without = plan_layers(plain, {}, files, base_layers=5)
    with_client = plan_layers(with_s3, {}, files, base_layers=5, first=(client.planned(),))
    assert S3_CLIENT not in [layer.name for layer in without.layers]
    assert [layer.name for layer in with_client.layers] == [S3_CLIENT, *(layer.name for layer in without.layers)]
    assert with_client.layers[0].kind == "deps" and with_client.layers[0].steps == ()
    # It counts against the budget: one layer fewer for the steps.
    tight = plan_layers(with_s3, {}, files, base_layers=5, budget=5 + 1 + 1 + 3, first=(client.planned(),))
    assert tight.shared_steps
