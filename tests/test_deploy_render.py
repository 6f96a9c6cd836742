"""`imagekit deploy render`: what lands in the manifests, for both flavours and several pipelines.

Every rendering here is also put through the full validation (Kruise CRD, Kubernetes
schemas, webhook and imagekit rules); test_deploy_validation.py shows those checks fail
on broken manifests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from imagekit.cli.main import app
from imagekit_deploy.ordinals import pod_ordinals, reserved_ordinals
from imagekit_deploy.renderer import render
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION, KRUISE_CRD_ENV, KruiseSchema, available_kubernetes_versions
from imagekit_deploy.settings import GRACE_MARGIN_SECONDS, RUNTIME_MEMORY, STEP_MEMORY, Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import validate_rendering
from imagekit_deploy.writer import load_rendered, to_stream, write_rendering
from imagekit_runtime.errors import UsageError
from imagekit_runtime.quantity import format_bytes
from imagekit_runtime.spec import load_pipeline

REPO = Path(__file__).resolve().parents[1]
WORDFREQ = REPO / "pipelines" / "wordfreq"
DEPLOY_DATA = REPO / "tests" / "data" / "pipelines"
PIPELINES = [WORDFREQ, DEPLOY_DATA / "deploy-single", DEPLOY_DATA / "deploy-wide"]
IMAGE = "registry.example.com/imagekit/pipeline:1.0"
KUBERNETES_VERSIONS = sorted({DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions()[-1]})

runner = CliRunner()
CRD_PATH = os.environ.get(KRUISE_CRD_ENV)
KRUISE = KruiseSchema(Path(CRD_PATH)) if CRD_PATH else None


def rendered(pipeline: Path = WORDFREQ, **options):
    spec = load_pipeline(pipeline)
    settings = resolve_settings(spec, image=options.pop("image", IMAGE), **options)
    return spec, settings, render(spec, settings)


def workload(rendering) -> dict:
    return rendering.workload().body


def pipeline_container(rendering) -> dict:
    return rendering.pod_template()["spec"]["containers"][0]


def env_of(container: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in container["env"]}


def volumes_of(rendering) -> dict[str, dict]:
    return {volume["name"]: volume for volume in rendering.pod_template()["spec"]["volumes"]}


def mounts_of(container: dict) -> dict[str, dict]:
    return {mount["mountPath"]: mount for mount in container["volumeMounts"]}


# --- every pipeline x flavour x SSD mode passes every check ---------------------------------

@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("ssd", [None, SsdMode.local_pv], ids=["ssd-default", "ssd-local-pv"])
@pytest.mark.parametrize("flavor", list(Flavor), ids=[f.value for f in Flavor])
@pytest.mark.parametrize("pipeline", PIPELINES, ids=[p.name for p in PIPELINES])
def test_rendered_manifests_pass_validation(pipeline, flavor, ssd, kubernetes_version):
    spec = load_pipeline(pipeline)
    if spec.checkpoint.ssd is None and ssd is not None:
        pytest.skip("pipeline has no SSD checkpoint")
    _, _, rendering = rendered(pipeline, flavor=flavor, ssd=ssd)
    report = validate_rendering(rendering, kubernetes_version=kubernetes_version, kruise=KRUISE)
    assert report.problems == []
    expected = {f"kubernetes-{kubernetes_version}", "kubernetes-api", "imagekit"}
    if flavor is Flavor.kruise:
        expected |= {"kruise-webhook"} | ({"kruise-crd"} if KRUISE else set())
        assert ("kruise-crd" in report.not_checked) is (KRUISE is None)
    assert set(report.checks_run) == expected


def test_skipped_shards_pass_validation():
    _, _, rendering = rendered(DEPLOY_DATA / "deploy-wide", skip_shards=(1, 5))
    assert validate_rendering(rendering, kruise=KRUISE).problems == []


# --- the Kruise flavour ---------------------------------------------------------------------------

def test_kruise_workload_is_an_in_place_parallel_advanced_statefulset():
    spec, settings, rendering = rendered(replicas=4)
    body = workload(rendering)
    assert body["apiVersion"] == "apps.kruise.io/v1beta1"
    assert body["kind"] == "StatefulSet"
    assert body["spec"]["replicas"] == 4
    assert body["spec"]["podManagementPolicy"] == "Parallel"
    assert body["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert body["spec"]["updateStrategy"]["rollingUpdate"]["podUpdatePolicy"] == "InPlaceIfPossible"
    assert rendering.pod_template()["spec"]["readinessGates"] == [{"conditionType": "InPlaceUpdateReady"}]
    assert body["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert "reserveOrdinals" not in body["spec"]
    assert body["spec"]["selector"]["matchLabels"].items() <= rendering.pod_template()["metadata"]["labels"].items()


def test_headless_service_governs_the_statefulset():
    _, _, rendering = rendered(namespace="pipelines")
    services = [m.body for m in rendering.manifests if m.kind == "Service"]
    assert len(services) == 1
    service = services[0]
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["name"] == workload(rendering)["spec"]["serviceName"]
    assert service["metadata"]["namespace"] == "pipelines"
    assert service["spec"]["selector"] == workload(rendering)["spec"]["selector"]["matchLabels"]


def test_shard_identity_comes_from_the_ordinal_with_the_pod_name_as_fallback():
    _, _, rendering = rendered(replicas=5)
    env = env_of(pipeline_container(rendering))
    assert env["IMAGEKIT_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["IMAGEKIT_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["IMAGEKIT_SHARD_COUNT"]["value"] == "5"
    assert env["IMAGEKIT_SHM_DIR"]["value"] == "/dev/shm/imagekit"
    assert env["IMAGEKIT_SSD_DIR"]["value"] == "/var/lib/imagekit/ssd"
    assert env["IMAGEKIT_PV_DIR"]["value"] == "/var/lib/imagekit/pv"


def test_replicas_default_to_the_pipelines_shards():
    spec, settings, rendering = rendered(DEPLOY_DATA / "deploy-wide")
    assert spec.shards == 8
    assert workload(rendering)["spec"]["replicas"] == 8
    assert env_of(pipeline_container(rendering))["IMAGEKIT_SHARD_COUNT"]["value"] == "8"


def test_shm_is_a_memory_emptydir_and_the_memory_limit_includes_it():
    spec, settings, rendering = rendered()
    shm = volumes_of(rendering)["shm"]
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    container = pipeline_container(rendering)
    assert mounts_of(container)["/dev/shm"]["name"] == "shm"
    expected = spec.shm_bytes + (spec.parallelism.cpu or 1) * STEP_MEMORY + RUNTIME_MEMORY
    assert container["resources"]["limits"]["memory"] == format_bytes(expected) == "2304Mi"
    assert container["resources"]["requests"]["memory"] == container["resources"]["limits"]["memory"]


def test_explicit_memory_limit_is_used():
    _, _, rendering = rendered(memory_limit="3Gi")
    assert pipeline_container(rendering)["resources"]["limits"]["memory"] == "3Gi"


def test_pod_and_container_run_locked_down():
    _, _, rendering = rendered()
    pod_spec = rendering.pod_template()["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["runAsUser"] == 10001
    assert pod_spec["securityContext"]["fsGroup"] == 10001
    assert pod_spec["automountServiceAccountToken"] is False
    context = pipeline_container(rendering)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["runAsNonRoot"] is True
    # The read-only root filesystem leaves /tmp to a volume.
    assert volumes_of(rendering)["tmp"]["emptyDir"]
    assert mounts_of(pipeline_container(rendering))["/tmp"]["name"] == "tmp"


def test_termination_grace_covers_grace_seconds_and_a_checkpoint_flush():
    spec, _, rendering = rendered(DEPLOY_DATA / "deploy-wide")
    grace = rendering.pod_template()["spec"]["terminationGracePeriodSeconds"]
    # 90 s for the steps, 6 GiB at 100 MiB/s, a fixed margin.
    assert grace == 90 + 6 * 1024 // 100 + 1 + GRACE_MARGIN_SECONDS
    _, _, small = rendered(DEPLOY_DATA / "deploy-single")
    assert small.pod_template()["spec"]["terminationGracePeriodSeconds"] >= GRACE_MARGIN_SECONDS
    assert small.pod_template()["spec"]["terminationGracePeriodSeconds"] < grace


def test_pv_is_a_retained_volume_claim_template_at_checkpoint_pv():
    _, _, rendering = rendered(pv_size="20Gi", pv_storage_class="fast-replicated")
    claims = {claim["metadata"]["name"]: claim for claim in workload(rendering)["spec"]["volumeClaimTemplates"]}
    assert claims["pv"]["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claims["pv"]["spec"]["storageClassName"] == "fast-replicated"
    assert claims["pv"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert mounts_of(pipeline_container(rendering))["/var/lib/imagekit/pv"]["name"] == "pv"
    assert "pv" not in volumes_of(rendering)


def test_ssd_hostpath_has_a_per_pod_directory_owned_by_the_runtime_user():
    _, _, rendering = rendered(ssd=SsdMode.hostpath, ssd_host_path="/mnt/disks/nvme0")
    ssd = volumes_of(rendering)["ssd"]
    assert ssd["hostPath"] == {"path": "/mnt/disks/nvme0/wordfreq", "type": "DirectoryOrCreate"}
    mount = mounts_of(pipeline_container(rendering))["/var/lib/imagekit/ssd"]
    assert mount["name"] == "ssd"
    assert "$(IMAGEKIT_POD_NAME)" in mount["subPathExpr"]
    (init,) = rendering.pod_template()["spec"]["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["securityContext"]["allowPrivilegeEscalation"] is False
    assert init["image"] == IMAGE
    assert not any(m.kind == "StorageClass" for m in rendering.manifests)


def test_ssd_local_pv_is_a_claim_on_a_wait_for_first_consumer_class():
    _, _, rendering = rendered(ssd=SsdMode.local_pv, ssd_size="200Gi")
    (storage_class,) = [m.body for m in rendering.manifests if m.kind == "StorageClass"]
    assert storage_class["provisioner"] == "kubernetes.io/no-provisioner"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    claims = {claim["metadata"]["name"]: claim for claim in workload(rendering)["spec"]["volumeClaimTemplates"]}
    assert claims["ssd"]["spec"]["storageClassName"] == storage_class["metadata"]["name"]
    assert claims["ssd"]["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert mounts_of(pipeline_container(rendering))["/var/lib/imagekit/ssd"]["name"] == "ssd"
    assert "ssd" not in volumes_of(rendering)
    assert "initContainers" not in rendering.pod_template()["spec"]


def test_pipeline_without_ssd_gets_no_ssd_volume():
    _, _, rendering = rendered(DEPLOY_DATA / "deploy-single")
    env = env_of(pipeline_container(rendering))
    assert "IMAGEKIT_SSD_DIR" not in env
    assert env["IMAGEKIT_PV_DIR"]["value"] == "/data/imagekit"
    assert "ssd" not in volumes_of(rendering)
    assert [c["metadata"]["name"] for c in workload(rendering)["spec"]["volumeClaimTemplates"]] == ["pv"]


def test_pipeline_without_pv_gets_no_claim_templates():
    _, _, rendering = rendered(DEPLOY_DATA / "deploy-wide")
    assert "volumeClaimTemplates" not in workload(rendering)["spec"]
    env = env_of(pipeline_container(rendering))
    assert "IMAGEKIT_PV_DIR" not in env
    assert env["IMAGEKIT_SSD_DIR"]["value"] == "/mnt/nvme/imagekit"


def test_skip_shard_reserves_ordinals_and_keeps_the_shard_count():
    _, settings, rendering = rendered(replicas=4, skip_shards=(1,))
    spec = workload(rendering)["spec"]
    assert spec["reserveOrdinals"] == [1]
    assert spec["replicas"] == 3
    assert env_of(pipeline_container(rendering))["IMAGEKIT_SHARD_COUNT"]["value"] == "4"
    assert pod_ordinals(spec["replicas"], reserved_ordinals(spec["reserveOrdinals"]).ordinals) == [0, 2, 3]


def test_skipping_a_shard_leaves_the_pod_template_alone():
    # Only replicas and reserveOrdinals change, so no running pod is updated or restarted.
    _, _, before = rendered(replicas=4)
    _, _, after = rendered(replicas=4, skip_shards=(2,))
    assert after.pod_template() == before.pod_template()
    assert after.workload().body["spec"]["volumeClaimTemplates"] == before.workload().body["spec"]["volumeClaimTemplates"]


def test_namespace_goes_on_namespaced_resources_only():
    _, _, rendering = rendered(namespace="batch", ssd=SsdMode.local_pv)
    for manifest in rendering.manifests:
        if manifest.kind == "StorageClass":
            assert "namespace" not in manifest.body["metadata"]
        else:
            assert manifest.body["metadata"]["namespace"] == "batch"


# --- the plain StatefulSet flavour ----------------------------------------------------------------

def test_statefulset_flavour_has_the_same_pod_and_no_kruise_fields():
    _, _, kruise = rendered(flavor=Flavor.kruise)
    _, _, plain = rendered(flavor=Flavor.statefulset)
    body = workload(plain)
    assert body["apiVersion"] == "apps/v1"
    assert body["spec"]["podManagementPolicy"] == "Parallel"
    assert "podUpdatePolicy" not in json.dumps(body)
    assert "reserveOrdinals" not in body["spec"]
    assert "readinessGates" not in body["spec"]["template"]["spec"]
    kruise_pod = json.loads(json.dumps(kruise.pod_template()))
    del kruise_pod["spec"]["readinessGates"]
    assert plain.pod_template() == kruise_pod
    assert body["spec"]["volumeClaimTemplates"] == workload(kruise)["spec"]["volumeClaimTemplates"]
    assert body["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}


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
    assert sorted(Path(line).name for line in written) == ["kustomization.yaml", "service.yaml", "statefulset.yaml"]
    assert all(Path(line).parent == out for line in written)
    assert f"kubectl apply -k {out}" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["kustomization.yaml", "service.yaml", "statefulset.yaml"]
    check = runner.invoke(app, ["deploy", "validate", str(out)])
    assert check.exit_code == 0, check.stderr
    assert "ok" in check.stdout


def test_cli_render_without_output_dir_prints_a_yaml_stream(tmp_path):
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "--flavor", "statefulset"])
    assert result.exit_code == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("v1", "Service"), ("apps/v1", "StatefulSet")]
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
    assert {r["kind"] for r in summary["resources"]} == {"Service", "StatefulSet"}
    assert all(Path(path).is_file() for path in summary["files"])


def test_renderer_modules_do_not_import_the_docker_sdk():
    """Nor the engine connection or the build path: only imagekit's neutral modules (references, labels)."""
    code = ("import sys, imagekit_deploy.renderer, imagekit_deploy.kruise, imagekit_deploy.statefulset, "
            "imagekit_deploy.validate, imagekit_deploy.writer; "
            "neutral = {'imagekit', 'imagekit.references', 'imagekit.labels'}; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'docker' "
            "or (m.split('.')[0] == 'imagekit' and m not in neutral)); "
            "print(bad); sys.exit(1 if bad else 0)")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_cli_render_prints_a_json_list_with_output_json_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-o", "json"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["apiVersion"] == "v1" and listed["kind"] == "List"
    assert [item["kind"] for item in listed["items"]] == ["Service", "StatefulSet"]
    assert list(tmp_path.iterdir()) == []  # `-o json` is a format, never a directory called json


def test_cli_render_output_yaml_is_the_same_stream_as_text():
    as_text = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE])
    as_yaml = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-o", "yaml"])
    assert as_text.exit_code == as_yaml.exit_code == 0, as_text.stderr + as_yaml.stderr
    assert as_yaml.stdout == as_text.stdout
    assert [d["kind"] for d in yaml.safe_load_all(as_yaml.stdout) if d] == ["Service", "StatefulSet"]


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
