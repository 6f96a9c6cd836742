"""`imagekit deploy render` on disk and at the CLI: one resource per file plus a kustomization, the same
bytes from any run or directory, a round trip through the files, and the CLI's outputs and refusals.
What lands in the manifests is in test_deploy_render.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from imagekit.cli.main import make_app
from imagekit_core.errors import UsageError
from imagekit_deploy.settings import RUNTIME_MEMORY, STEP_MEMORY, SsdMode
from imagekit_deploy.validate import validate_rendering
from imagekit_deploy.writer import load_rendered, to_stream, write_rendering
from render_support import DEPLOY_DATA, IMAGE, WORDFREQ, env_of, pipeline_container, rendered

app = make_app(["deploy"])  # the command CliRunner invokes

runner = CliRunner()


# --- files, determinism, round trip ---------------------------------------------------------------

def test_one_resource_per_file_plus_kustomization(tmp_path):
    _, _, rendering = rendered(ssd=SsdMode.local_pv)
    written = write_rendering(rendering, tmp_path)
    names = sorted(path.name for path in written)
    assert names == ["kustomization.yaml", "service.yaml", "statefulset.yaml", "storageclass-imagekit-local-ssd.yaml"]
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(n for n in names if n != "kustomization.yaml")
    for name in kustomization["resources"]:
        documents = [d for d in yaml.safe_load_all((tmp_path / name).read_text()) if d]
        assert len(documents) == 1


def test_output_is_deterministic_across_runs_and_working_directories(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    cwd = os.getcwd()
    try:
        write_rendering(rendered()[2], first)
        os.chdir(WORDFREQ)
        write_rendering(rendered(Path("."))[2], second)
    finally:
        os.chdir(cwd)
    for path in sorted(first.iterdir()):
        assert path.read_bytes() == (second / path.name).read_bytes()
    assert to_stream(rendered()[2]) == to_stream(rendered()[2])
    # Conventional key order, not alphabetical: apiVersion, kind, metadata, spec.
    assert list(yaml.safe_load((first / "statefulset.yaml").read_text())) == ["apiVersion", "kind", "metadata", "spec"]


def test_written_files_read_back_as_the_same_rendering(tmp_path):
    _, _, rendering = rendered(ssd=SsdMode.local_pv)
    write_rendering(rendering, tmp_path)
    loaded = load_rendered(tmp_path)
    assert loaded.flavor == "kruise"
    assert [(m.filename, m.body) for m in loaded.manifests] == [(m.filename, m.body) for m in rendering.manifests]


def test_re_rendering_removes_files_of_resources_that_went_away(tmp_path):
    write_rendering(rendered(ssd=SsdMode.local_pv)[2], tmp_path)
    assert (tmp_path / "storageclass-imagekit-local-ssd.yaml").exists()
    write_rendering(rendered(ssd=SsdMode.hostpath)[2], tmp_path)
    assert not (tmp_path / "storageclass-imagekit-local-ssd.yaml").exists()
    assert load_rendered(tmp_path).manifests == rendered(ssd=SsdMode.hostpath)[2].manifests


# --- the CLI --------------------------------------------------------------------------------------

def test_cli_render_writes_files_that_validate(tmp_path):
    out = tmp_path / "manifests"
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "--replicas", "3", "-d", str(out)])
    assert result.exit_code == 0, result.stderr
    written = result.stdout.splitlines()  # the files it wrote, one path a line: the result on stdout
    # The default SSD is a local-PV claim, of a StorageClass rendered beside the set.
    files = ["kustomization.yaml", "service.yaml", "statefulset.yaml", "storageclass-imagekit-local-ssd.yaml"]
    assert sorted(Path(line).name for line in written) == files
    assert all(Path(line).parent == out for line in written)
    assert f"kubectl apply -k {out}" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == files
    check = runner.invoke(app, ["deploy", "validate", str(out)])
    assert check.exit_code == 0, check.stderr
    assert "ok" in check.stdout


def test_cli_render_without_output_dir_prints_a_yaml_stream(tmp_path):
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "--flavor", "statefulset"])
    assert result.exit_code == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("storage.k8s.io/v1", "StorageClass"), ("v1", "Service"),
                                                                 ("apps/v1", "StatefulSet")]
    # The stream validates too.
    stream = tmp_path / "all.yaml"
    stream.write_text(result.stdout)
    assert runner.invoke(app, ["deploy", "validate", str(stream)]).exit_code == 0


def test_cli_render_json_summary(tmp_path):
    result = runner.invoke(app, ["deploy", "render", str(DEPLOY_DATA / "deploy-wide"), "--image", IMAGE,
                                 "--skip-shard", "3", "--output", "json", "-d", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["flavor"] == "kruise"
    assert summary["shard_count"] == 8
    assert summary["replicas"] == 7
    assert summary["skipped_shards"] == [3]
    assert summary["validation"]["ok"] is True
    assert {r["kind"] for r in summary["resources"]} == {"StorageClass", "Service", "StatefulSet"}
    assert all(Path(path).is_file() for path in summary["files"])


def test_renderer_modules_do_not_import_the_docker_sdk():
    """Nor the engine connection or anything of the build toolkit (imagekit): rendering and validating need
    the vocabulary (imagekit_core) only."""
    code = ("import sys, imagekit_deploy.renderer, imagekit_deploy.flags, imagekit_deploy.settings, "
            "imagekit_deploy.validate, imagekit_deploy.writer; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'imagekit') "
            "or m == 'imagekit_core.engine'); "
            "print(bad); sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_cli_render_prints_a_json_list_with_output_json_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["apiVersion"] == "v1" and listed["kind"] == "List"
    assert [item["kind"] for item in listed["items"]] == ["StorageClass", "Service", "StatefulSet"]
    assert list(tmp_path.iterdir()) == []  # `-o json` is a format, never a directory called json


def test_cli_render_output_yaml_is_the_same_stream_as_text():
    as_text = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE])
    as_yaml = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-o", "yaml"])
    assert as_text.exit_code == as_yaml.exit_code == 0, as_text.stderr + as_yaml.stderr
    assert as_yaml.stdout == as_text.stdout
    assert [d["kind"] for d in yaml.safe_load_all(as_yaml.stdout) if d] == ["StorageClass", "Service", "StatefulSet"]


def test_cpus_set_the_pods_cpu_request_and_limit_and_the_runtimes_cpu_slots():
    spec, settings, rendering = rendered(cpus="1500m")
    container = pipeline_container(rendering)
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"] == "1500m"
    assert env_of(container)["IMAGEKIT_CPUS"]["value"] == "1500m"
    assert not validate_rendering(rendering).problems
    # wordfreq says parallelism: 2, so 2 steps' memory whatever the CPUs
    assert settings.memory_limit == spec.shm_bytes + 2 * STEP_MEMORY + RUNTIME_MEMORY
    _, _, plain = rendered()
    assert "cpu" not in pipeline_container(plain)["resources"]["limits"]
    assert "IMAGEKIT_CPUS" not in env_of(pipeline_container(plain))


def test_bad_cpus_are_refused_in_one_line():
    with pytest.raises(UsageError) as refused:
        rendered(cpus="two")
    assert "--cpus" in str(refused.value)
