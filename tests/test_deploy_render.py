"""`imagekit deploy render`: what lands in the manifests, for both flavors and several pipelines.

Every rendering here is also put through the full validation (Kruise CRD, Kubernetes
schemas, webhook and imagekit rules); test_deploy_validation.py shows those checks fail
on broken manifests.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagekit_core.spec import load_pipeline
from imagekit_core.spec.quantity import format_bytes
from imagekit_deploy.ordinals import pod_ordinals, reserved_ordinals
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION, KRUISE_CRD_ENV, KruiseSchema, available_kubernetes_versions
from imagekit_deploy.settings import GRACE_MARGIN_SECONDS, RUNTIME_MEMORY, STEP_MEMORY, Flavor, SsdMode
from imagekit_deploy.validate import validate_rendering
from render_support import DEPLOY_DATA, IMAGE, WORDFREQ, env_of, mounts_of, pipeline_container, rendered, volumes_of, workload

PIPELINES = [WORDFREQ, DEPLOY_DATA / "deploy-single", DEPLOY_DATA / "deploy-wide"]
KUBERNETES_VERSIONS = sorted({DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions()[-1]})

CRD_PATH = os.environ.get(KRUISE_CRD_ENV)
KRUISE = KruiseSchema(Path(CRD_PATH)) if CRD_PATH else None


# --- every pipeline x flavor x SSD mode passes every check ---------------------------------

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
    _, _, rendering = rendered(DEPLOY_DATA / "deploy-wide", skip_shard=[1, 5])
    assert validate_rendering(rendering, kruise=KRUISE).problems == []


# --- the Kruise flavor ---------------------------------------------------------------------------

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


def test_pipeline_without_pv_gets_no_pv_claim_template():
    _, _, rendering = rendered(DEPLOY_DATA / "deploy-wide")
    claims = [claim["metadata"]["name"] for claim in workload(rendering)["spec"].get("volumeClaimTemplates", [])]
    assert claims == ["ssd"]  # the default SSD is a local-PV claim; no PV claim
    env = env_of(pipeline_container(rendering))
    assert "IMAGEKIT_PV_DIR" not in env
    assert env["IMAGEKIT_SSD_DIR"]["value"] == "/mnt/nvme/imagekit"


def test_skip_shard_reserves_ordinals_and_keeps_the_shard_count():
    _, settings, rendering = rendered(replicas=4, skip_shard=[1])
    spec = workload(rendering)["spec"]
    assert spec["reserveOrdinals"] == [1]
    assert spec["replicas"] == 3
    assert env_of(pipeline_container(rendering))["IMAGEKIT_SHARD_COUNT"]["value"] == "4"
    assert pod_ordinals(spec["replicas"], reserved_ordinals(spec["reserveOrdinals"]).ordinals) == [0, 2, 3]


def test_skipping_a_shard_leaves_the_pod_template_alone():
    # Only replicas and reserveOrdinals change, so no running pod is updated or restarted.
    _, _, before = rendered(replicas=4)
    _, _, after = rendered(replicas=4, skip_shard=[2])
    assert after.pod_template() == before.pod_template()
    assert after.workload().body["spec"]["volumeClaimTemplates"] == before.workload().body["spec"]["volumeClaimTemplates"]


def test_namespace_goes_on_namespaced_resources_only():
    _, _, rendering = rendered(namespace="batch", ssd=SsdMode.local_pv)
    for manifest in rendering.manifests:
        if manifest.kind == "StorageClass":
            assert "namespace" not in manifest.body["metadata"]
        else:
            assert manifest.body["metadata"]["namespace"] == "batch"


# --- the plain StatefulSet flavor ----------------------------------------------------------------

def test_statefulset_flavor_has_the_same_pod_and_no_kruise_fields():
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
