"""The runtime base: a base image with python3 but without supervisor or pyyaml (like
python:3.11-slim) gets them offline, from wheels resolved on the host; Containerfile.base,
built by hand with an engine, gives the file tree imagekit assembles."""
from __future__ import annotations

import hashlib
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_engine import (
    BASE_IMAGE,
    ENGINE_REPO,
    REGISTRY,
    BuiltImage,
    assert_right_wordfreq,
    build_json,
    run_pipeline_image,
)
from imagekit.build.docker import ChunkReader
from imagekit.build.runtimebase import core_package, runtime_package
from imagekit.build.wheels import PythonTarget, download_runtime_wheels
from imagekit_core.spec.stepfiles import Kind, walk

# slow: about 18 s (a bare base image is made, then the example built on it): outside `-m "not slow"`
pytestmark = [pytest.mark.docker, pytest.mark.slow]

BARE_BASE = "localhost/imagekit-test/python-without-supervisor:bookworm"
STRIP = ("rm -rf /usr/lib/python3/dist-packages/supervisor* /usr/lib/python3/dist-packages/yaml "
         "/usr/lib/python3/dist-packages/prometheus_client* "
         "/usr/lib/python3/dist-packages/_yaml /usr/lib/python3/dist-packages/PyYAML* "
         "/usr/bin/supervisord /usr/bin/supervisorctl /usr/bin/echo_supervisord_conf")


@pytest.fixture(scope="module")
def bare_base(docker_client: Any, base_image_tag: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("bare-base")
    (context / "Containerfile").write_text(f"FROM {base_image_tag}\nRUN {STRIP}\n")
    docker_client.images.build(path=str(context), dockerfile="Containerfile", tag=BARE_BASE, rm=True)
    missing = docker_client.containers.run(
        BARE_BASE, entrypoint=["python3", "-c", "import importlib.util as u; print(u.find_spec('supervisor'), "
                                                "u.find_spec('yaml'), u.find_spec('prometheus_client'))"], remove=True)
    assert missing.decode().split() == ["None", "None", "None"]
    return BARE_BASE


@pytest.fixture(scope="module")
def bare_base_report(bare_base: str, example_image_docker: BuiltImage, build_env: dict[str, str]) -> dict[str, Any]:
    """The example built on the bare base."""
    tag = f"{REGISTRY}/imagekit-test/wordfreq-bare-base:latest"
    report = build_json(imagekit("build", example_image_docker.pipeline, "--tag", tag, "--base", bare_base,
                                     "--output", "json", env=build_env))
    return report


@pytest.fixture(scope="module")
def bare_base_build(bare_base_report: dict[str, Any]) -> str:
    return str(bare_base_report["tag"])


def test_base_without_supervisor_and_pyyaml_gets_them_offline(bare_base: str, bare_base_report: dict[str, Any],
                                                              example_image_docker: BuiltImage,
                                                              docker_client: Any, tmp_path: Path) -> None:
    report = bare_base_report
    tag = report["tag"]
    assert report["base"] == bare_base and report["runtime_base"] != example_image_docker.report["runtime_base"]
    versions = docker_client.containers.run(
        tag, entrypoint=["python3", "-c", "import supervisor.options, yaml; print(yaml.__version__)"],
        network_disabled=True, remove=True)
    assert versions.decode().strip()
    run = run_pipeline_image(tag, tmp_path / "results", shard_index=0)
    assert_right_wordfreq(run, example_image_docker.pipeline, tmp_path, 0)
    # BASE_IMAGE itself already has both: nothing is installed there.
    assert example_image_docker.report["base"] == BASE_IMAGE


# What differs between two containers of any image, and what only the pipeline image has.
_NOT_COMPARED = ("dev/", "proc/", "sys/", ".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf",
                 "opt/imagekit/deps/", "opt/imagekit/pipeline/", "opt/imagekit/sbom")


def file_tree(docker_client: Any, image: str) -> dict[str, tuple[object, ...]]:
    """Every entry of image's file system (as `docker export` gives it): kind, mode, owner, content; no times."""
    container = docker_client.containers.create(image, entrypoint=["true"])
    tree: dict[str, tuple[object, ...]] = {}
    try:
        reader = ChunkReader(container.export(chunk_size=1 << 20))
        with tarfile.open(fileobj=reader, mode="r|") as archive:
            for member in archive:
                name = member.name.rstrip("/")
                if any(name == skip.rstrip("/") and not skip.endswith("/") or name.startswith(skip)
                       for skip in _NOT_COMPARED):
                    continue
                content = ""
                if member.isfile():
                    handle = archive.extractfile(member)
                    content = hashlib.sha256(handle.read() if handle else b"").hexdigest()
                tree[name] = (member.type, member.mode, member.uid, member.gid, member.linkname, content)
    finally:
        container.remove(force=True)
    return tree


def by_hand_runtime_base(docker_client: Any, base: str, wheels: list[Path], context: Path, tag: str) -> str:
    """Containerfile.base built as its comment says a user builds it, with any engine (here Docker's)."""
    setup = context / "setup"
    (setup / "wheels").mkdir(parents=True)
    shutil.copyfile(ENGINE_REPO / "imagekit" / "build" / "base-setup.sh", setup / "base-setup.sh")
    for wheel in wheels:
        shutil.copyfile(wheel, setup / "wheels" / wheel.name)
    for package in (runtime_package(), core_package()):
        target = context / "runtime" / package.name
        for entry in walk(package):
            if entry.kind is Kind.directory:
                (target / entry.relative).mkdir(parents=True, exist_ok=True)
            else:
                (target / entry.relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(entry.path, target / entry.relative)
    shutil.copyfile(ENGINE_REPO / "Containerfile.base", context / "Containerfile")
    docker_client.images.build(path=str(context), dockerfile="Containerfile", tag=tag, rm=True,
                               buildargs={"BASE": base})
    return tag


@pytest.mark.slow
@pytest.mark.parametrize("which", ["base", "bare"])
def test_containerfile_base_builds_the_runtime_base_imagekit_assembles(
        which: str, example_image_docker: BuiltImage, bare_base_build: str, bare_base: str, docker_client: Any,
        tmp_path: Path) -> None:
    base, image = (BASE_IMAGE, example_image_docker.tag) if which == "base" else (bare_base, bare_base_build)
    wheels: list[Path] = []
    if which == "bare":  # the same wheels imagekit unpacks (resolved on the host, as the build does)
        target = PythonTarget(version="3.11", has_supervisor=False, has_yaml=False, has_prometheus=False)
        wheels = download_runtime_wheels(target)
        assert {wheel.name.split("-")[0].lower() for wheel in wheels} == {"supervisor", "pyyaml", "prometheus_client"}
    by_hand = by_hand_runtime_base(docker_client, base, wheels, tmp_path / "context",
                                   f"localhost/imagekit-test/by-hand-runtime-base:{which}")
    expected = file_tree(docker_client, by_hand)
    assembled = file_tree(docker_client, image)
    for path in ("etc/passwd", "home/imagekit", "opt/imagekit/runtime/imagekit_runtime/__main__.py",
                 "var/lib/imagekit/ssd"):
        assert path in expected, path
    differences = sorted(set(expected.items()) ^ set(assembled.items()))
    assert not differences, differences[:20]
    docker_client.images.remove(by_hand, force=True)
