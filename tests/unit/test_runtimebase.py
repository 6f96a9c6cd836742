"""The runtime base as imagekit assembles it (imagekit/build/runtimebase.py), in process: what the setup
layer adds to a base, the config it gives, and that the same inputs give the same layers and config."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path, PurePosixPath

from imagekit.build.assembly import BaseImage, assemble, oci_config
from imagekit.build.runtimebase import RUNTIME_UID, BaseFacts, assemble_runtime_base, runtime_config, setup_entries
from imagekit_core.spec.stepfiles import Kind

from .wheelfactory import make_wheel

PASSWD = "root:x:0:0:root:/root:/bin/bash\n"
GROUP = "root:x:0:\n"
FACTS = BaseFacts(purelib="/usr/local/lib/python3.11/dist-packages", programs=(),
                  files={"/etc/passwd": PASSWD, "/etc/group": GROUP},
                  stats={"/usr/local": (0o2775, 0, 50), "/etc/passwd": (0o644, 0, 0)})
DOCKER_CONFIG = {
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z", "docker_version": "20.10",
    "container": "abc", "container_config": {"Hostname": "abc"},
    "config": {"Hostname": "", "Env": ["PATH=/usr/bin", "PYTHONPATH=/x"], "Cmd": ["python3"], "Labels": None,
               "AttachStdin": False},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "import", "empty_layer": False}],
}


def test_setup_layer_adds_wheels_launchers_the_user_and_keeps_the_bases_directories(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "supervisor", "4.2.5")
    entries = {str(entry.path): entry for entry in setup_entries(FACTS, [wheel])}
    assert entries["/usr/local/lib/python3.11/dist-packages/supervisor/__init__.py"].mode == 0o644
    assert entries["/usr/local/lib/python3.11/dist-packages/supervisor-4.2.5.dist-info"].kind is Kind.directory
    assert entries["/usr/local/bin/supervisord"].mode == 0o755
    launcher = entries["/usr/local/bin/supervisord"].content
    assert launcher.startswith(b"#!/bin/sh\nexec python3 -m supervisor.supervisord")
    assert entries["/etc/passwd"].content.decode() == PASSWD + (
        "imagekit:x:10001:10001:imagekit runtime:/home/imagekit:/usr/sbin/nologin\n")
    assert entries["/etc/group"].content.decode() == GROUP + "imagekit:x:10001:\n"
    home = entries["/home/imagekit"]
    assert (home.uid, home.gid, home.mode) == (RUNTIME_UID, RUNTIME_UID, 0o755)
    assert entries["/var/lib/imagekit/ssd"].uid == RUNTIME_UID and entries["/opt/imagekit/deps"].uid == 0
    local = entries["/usr/local"]  # a directory of the base the layer passes through: as the base has it
    assert (local.mode, local.gid) == (0o2775, 50)


def test_a_base_with_everything_gets_only_the_user_and_directories() -> None:
    facts = BaseFacts(purelib=FACTS.purelib, programs=("supervisord", "supervisorctl"),
                      files={"/etc/passwd": PASSWD + "imagekit:x:10001:10001::/home/imagekit:/bin/sh\n",
                             "/etc/group": GROUP})
    paths = {str(entry.path) for entry in setup_entries(facts, [])}
    assert not any(path.startswith(("/usr/local/bin/", "/etc/")) and path != "/etc" for path in paths)
    assert {"/home/imagekit", "/opt/imagekit/deps", "/opt/imagekit/pipeline", "/var/lib/imagekit/pv"} <= paths


def test_the_config_is_the_bases_in_oci_fields_with_the_runtimes_environment_user_and_entrypoint() -> None:
    config = runtime_config(BaseImage(id="sha256:" + "2" * 64, config=oci_config(DOCKER_CONFIG),
                                      layer_sizes=(1,))).config
    assert set(config) == {"architecture", "os", "created", "config", "rootfs", "history"}
    runtime = config["config"]
    assert runtime["Env"] == ["PATH=/usr/bin", "PYTHONPATH=/opt/imagekit/runtime",
                              "IMAGEKIT_DEPS_ROOT=/opt/imagekit/deps", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"]
    assert runtime["User"] == "10001:10001" and "Cmd" not in runtime and "Hostname" not in runtime
    assert runtime["Entrypoint"][:3] == ["python3", "-m", "imagekit_runtime"]
    assert config["history"] == [{"created": "2024-01-01T00:00:00Z", "created_by": "import"}]


def test_the_same_inputs_give_the_same_runtime_base_and_config(tmp_path: Path) -> None:
    sbom = tmp_path / "sbom"
    sbom.mkdir()
    (sbom / "runtime.cdx.json").write_text("{}\n")
    base = BaseImage(id="sha256:" + "2" * 64, config=DOCKER_CONFIG, layer_sizes=(1,))
    built = [assemble_runtime_base(base, FACTS, [], tmp_path / f"out{n}", sbom) for n in (1, 2)]
    assert [layer.digest for layer in built[0].layers] == [layer.digest for layer in built[1].layers]
    configs = [assemble(runtime.base, runtime.layers, {"a": "b"}, "2023-11-14T22:13:20Z").config for runtime in built]
    assert configs[0] == configs[1]
    assert json.loads(configs[0])["rootfs"]["diff_ids"][1:] == [layer.digest for layer in built[0].layers]
    with tarfile.open(built[0].layers[1].local.path) as archive:
        names = archive.getnames()
    assert "opt/imagekit/runtime/imagekit_runtime/__main__.py" in names
    assert "opt/imagekit/sbom/runtime.cdx.json" in names
    assert not any("__pycache__" in name for name in names)
    assert str(PurePosixPath("/opt/imagekit/runtime")) == built[0].base.config["config"]["Env"][1].split("=")[1]
