"""Validation of deploy manifests and settings: what must be refused, is.

Each broken manifest below starts from a valid rendering and breaks one thing; the
check that must catch it (Kruise CRD, Kubernetes schema, Kruise webhook, API server
rule, imagekit contract) is named. Settings the CLI refuses before rendering are in
test_deploy_render_refusals.py.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from imagekit.cli.main import make_app
from imagekit_core.spec import load_pipeline
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.renderer import Manifest, Rendering, render
from imagekit_deploy.schemas import KRUISE_CRD_ENV, KruiseSchema, strict
from imagekit_deploy.settings import Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import validate_rendering
from imagekit_deploy.writer import write_rendering

app = make_app(["deploy"])  # the command CliRunner invokes

REPO = Path(__file__).resolve().parents[1]
WORDFREQ = REPO / "pipelines" / "wordfreq"
IMAGE = "registry.example.com/imagekit/wordfreq:1.0"

runner = CliRunner()

CRD_PATH = Path(os.environ[KRUISE_CRD_ENV]) if os.environ.get(KRUISE_CRD_ENV) else None
needs_crd = pytest.mark.skipif(not CRD_PATH, reason=f"{KRUISE_CRD_ENV} is not set: the Kruise CRD checks need the CRD file")


def crd_path() -> Path:
    """The Kruise CRD of a test marked needs_crd (which skips it when there is none)."""
    assert CRD_PATH is not None
    return CRD_PATH


def kruise() -> KruiseSchema | None:
    return KruiseSchema(CRD_PATH) if CRD_PATH else None


def validated(rendering: Rendering):
    return validate_rendering(rendering, kruise=kruise())


def rendering_of(flavor: Flavor, ssd: SsdMode = SsdMode.local_pv) -> Rendering:
    spec = load_pipeline(WORDFREQ)
    return render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, flavor=flavor, ssd=ssd)))


def broken(flavor: Flavor, mutate: Callable[[dict[str, dict]], None]) -> Rendering:
    """A valid rendering with `mutate` applied to its resources, keyed by kind."""
    rendering = rendering_of(flavor)
    bodies = {m.kind: copy.deepcopy(m.body) for m in rendering.manifests}
    mutate(bodies)
    manifests = tuple(Manifest(m.filename, bodies[m.kind]) for m in rendering.manifests)
    return Rendering(rendering.flavor, manifests)


def pod(bodies: dict[str, dict]) -> dict:
    return bodies["StatefulSet"]["spec"]["template"]["spec"]


def container(bodies: dict[str, dict]) -> dict:
    return pod(bodies)["containers"][0]


def env(bodies: dict[str, dict], name: str) -> dict:
    return next(entry for entry in container(bodies)["env"] if entry["name"] == name)


def rolling(bodies: dict[str, dict]) -> dict:
    return bodies["StatefulSet"]["spec"]["updateStrategy"]["rollingUpdate"]


def _set(path: list, value):
    def mutate(bodies):
        target = bodies
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


# (id, flavor, mutation, check that must report it, field path it starts with, words in the message)
KRUISE, PLAIN = Flavor.kruise, Flavor.statefulset
BROKEN = [
    # The Kruise CRD's openAPIV3Schema.
    ("crd-replicas-not-int", KRUISE, _set(["StatefulSet", "spec", "replicas"], "two"),
     "kruise-crd", "spec.replicas", "integer"),
    ("crd-unknown-field", KRUISE, lambda b: rolling(b).update(podUpdatePolicyy="InPlaceOnly"),
     "kruise-crd", "spec.updateStrategy.rollingUpdate", "podUpdatePolicyy"),
    ("crd-retention-not-object", KRUISE, _set(["StatefulSet", "spec", "persistentVolumeClaimRetentionPolicy"], "Retain"),
     "kruise-crd", "spec.persistentVolumeClaimRetentionPolicy", "object"),
    # The Kubernetes schemas, for the pod template, claims and the other resources.
    ("k8s-container-typo", KRUISE, lambda b: container(b).update(imagePullPolicyy="Always"),
     "kubernetes-", "spec.template.spec.containers[0]", "imagePullPolicyy"),
    ("k8s-claim-access-modes", KRUISE,
     lambda b: b["StatefulSet"]["spec"]["volumeClaimTemplates"][0]["spec"].update(accessModes="ReadWriteOnce"),
     "kubernetes-", "spec.volumeClaimTemplates[0].spec.accessModes", "array"),
    ("k8s-plain-has-kruise-field", PLAIN, _set(["StatefulSet", "spec", "reserveOrdinals"], [1]),
     "kubernetes-", "spec", "reserveOrdinals"),
    ("k8s-plain-has-in-place-policy", PLAIN, lambda b: rolling(b).update(podUpdatePolicy="InPlaceIfPossible"),
     "kubernetes-", "spec.updateStrategy.rollingUpdate", "podUpdatePolicy"),
    ("k8s-service-typo", KRUISE, _set(["Service", "spec", "clusterIp"], "None"),
     "kubernetes-", "spec", "clusterIp"),
    ("k8s-storageclass-typo", KRUISE, _set(["StorageClass", "volumeBindingMod"], "Immediate"),
     "kubernetes-", "(root)", "volumeBindingMod"),
    # Kruise's validating webhook: what the schema cannot say.
    ("webhook-in-place-needs-readiness-gate", KRUISE, lambda b: pod(b).pop("readinessGates"),
     "kruise-webhook", "spec.template.spec.readinessGates", "InPlaceUpdateReady"),
    ("webhook-in-place-only-needs-readiness-gate", KRUISE,
     lambda b: (pod(b).pop("readinessGates"), rolling(b).update(podUpdatePolicy="InPlaceOnly")),
     "kruise-webhook", "spec.template.spec.readinessGates", "InPlaceOnly"),
    ("webhook-max-unavailable-needs-parallel", KRUISE,
     lambda b: (b["StatefulSet"]["spec"].update(podManagementPolicy="OrderedReady"), rolling(b).update(maxUnavailable=2)),
     "kruise-webhook", "spec.updateStrategy.rollingUpdate.maxUnavailable", "Parallel"),
    ("webhook-max-unavailable-percent-needs-parallel", KRUISE,
     lambda b: (b["StatefulSet"]["spec"].pop("podManagementPolicy"), rolling(b).update(maxUnavailable="50%")),
     "kruise-webhook", "spec.updateStrategy.rollingUpdate.maxUnavailable", "Parallel"),
    ("webhook-max-unavailable-zero", KRUISE, lambda b: rolling(b).update(maxUnavailable=0),
     "kruise-webhook", "spec.updateStrategy.rollingUpdate.maxUnavailable", "less than 1"),
    ("webhook-pod-update-policy", KRUISE, lambda b: rolling(b).update(podUpdatePolicy="Sometimes"),
     "kruise-webhook", "spec.updateStrategy.rollingUpdate.podUpdatePolicy", "must be one of"),
    ("webhook-pod-management-policy", KRUISE, _set(["StatefulSet", "spec", "podManagementPolicy"], "AllAtOnce"),
     "kruise-webhook", "spec.podManagementPolicy", "Parallel"),
    ("webhook-reserve-ordinal-word", KRUISE, _set(["StatefulSet", "spec", "reserveOrdinals"], ["one"]),
     "kruise-webhook", "spec.reserveOrdinals[0]", "not an ordinal"),
    ("webhook-reserve-ordinal-negative", KRUISE, _set(["StatefulSet", "spec", "reserveOrdinals"], [-1]),
     "kruise-webhook", "spec.reserveOrdinals[0]", "negative"),
    ("webhook-reserve-ordinal-backwards-range", KRUISE, _set(["StatefulSet", "spec", "reserveOrdinals"], ["3-1"]),
     "kruise-webhook", "spec.reserveOrdinals[0]", "range"),
    ("webhook-negative-replicas", KRUISE, _set(["StatefulSet", "spec", "replicas"], -1),
     "kruise-webhook", "spec.replicas", ">= 0"),
    ("webhook-retention-policy", KRUISE,
     _set(["StatefulSet", "spec", "persistentVolumeClaimRetentionPolicy", "whenDeleted"], "Keep"),
     "kruise-webhook", "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain or Delete"),
    ("webhook-unordered-update-needs-parallel", KRUISE,
     lambda b: (b["StatefulSet"]["spec"].update(podManagementPolicy="OrderedReady"), rolling(b).update(
         maxUnavailable=1, unorderedUpdate={"priorityStrategy": {}})),
     "kruise-webhook", "spec.updateStrategy.rollingUpdate.unorderedUpdate", "Parallel"),
    # The API server's own checks beyond the schema.
    ("api-selector-mismatch", KRUISE, _set(["StatefulSet", "spec", "selector", "matchLabels", "app.kubernetes.io/name"], "other"),
     "kubernetes-api", "spec.template.metadata.labels", "selector"),
    ("api-mount-without-volume", PLAIN, lambda b: container(b)["volumeMounts"].append({"name": "cache", "mountPath": "/cache"}),
     "kubernetes-api", "spec.template.spec.containers[0].volumeMounts[4].name", "names no volume"),
    ("api-env-field-path", PLAIN,
     lambda b: env(b, "IMAGEKIT_POD_NAME")["valueFrom"]["fieldRef"].update(fieldPath="metadata.generateName"),
     "kubernetes-api", "spec.template.spec.containers[0].env[2].valueFrom.fieldRef.fieldPath", "not supported"),
    ("api-restart-policy", PLAIN, lambda b: pod(b).update(restartPolicy="OnFailure"),
     "kubernetes-api", "spec.template.spec.restartPolicy", "Always"),
    ("api-request-above-limit", PLAIN,
     lambda b: container(b)["resources"]["requests"].update(memory="64Gi"),
     "kubernetes-api", "spec.template.spec.containers[0].resources.requests.memory", "more than the limit"),
    ("api-local-class-binds-immediately", KRUISE, _set(["StorageClass", "volumeBindingMode"], "Immediate"),
     "kubernetes-api", "volumeBindingMode", "WaitForFirstConsumer"),
    # imagekit's contract with the runtime.
    ("imagekit-zero-replicas", KRUISE, _set(["StatefulSet", "spec", "replicas"], 0),
     "imagekit", "spec.replicas", "at least one"),
    ("imagekit-reserved-ordinal-without-fewer-replicas", KRUISE, _set(["StatefulSet", "spec", "reserveOrdinals"], [0]),
     "imagekit", "spec.replicas", "ordinals are shards"),
    ("imagekit-shm-above-memory-limit", PLAIN, lambda b: pod(b)["volumes"][0]["emptyDir"].update(sizeLimit="4Gi"),
     "imagekit", "spec.template.spec.containers[0].resources.limits.memory", "not larger than shm"),
    ("imagekit-shm-not-memory", PLAIN, lambda b: pod(b)["volumes"][0]["emptyDir"].pop("medium"),
     "imagekit", "spec.template.spec.containers[0].volumeMounts", "medium Memory"),
    ("imagekit-no-memory-limit", PLAIN, lambda b: container(b)["resources"].pop("limits"),
     "imagekit", "spec.template.spec.containers[0].resources.limits.memory", "required"),
    ("imagekit-shard-index-not-from-ordinal", KRUISE, lambda b: env(b, "IMAGEKIT_SHARD_INDEX").update(
        value="0") or env(b, "IMAGEKIT_SHARD_INDEX").pop("valueFrom"),
     "imagekit", "spec.template.spec.containers[0].env", "apps.kubernetes.io/pod-index"),
    ("imagekit-checkpoint-outside-mounts", PLAIN, lambda b: env(b, "IMAGEKIT_PV_DIR").update(value="/srv/pv"),
     "imagekit", "spec.template.spec.containers[0].env", "not under a checkpoint volume mount"),
    ("imagekit-pv-on-emptydir", PLAIN, lambda b: (
        b["StatefulSet"]["spec"]["volumeClaimTemplates"].pop(0), pod(b)["volumes"].append({"name": "pv", "emptyDir": {}})),
     "imagekit", "spec.template.spec.containers[0].volumeMounts", "does not survive the node"),
    ("imagekit-retention-delete", PLAIN,
     _set(["StatefulSet", "spec", "persistentVolumeClaimRetentionPolicy", "whenScaled"], "Delete"),
     "imagekit", "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Retain"),
    ("imagekit-writable-root", KRUISE, lambda b: container(b)["securityContext"].update(readOnlyRootFilesystem=False),
     "imagekit", "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem", "true"),
    ("imagekit-capabilities-kept", KRUISE, lambda b: container(b)["securityContext"].pop("capabilities"),
     "imagekit", "spec.template.spec.containers[0].securityContext.capabilities.drop", "ALL"),
    ("imagekit-runs-as-root", KRUISE, lambda b: (container(b)["securityContext"].update(runAsNonRoot=False)),
     "imagekit", "spec.template.spec.containers[0].securityContext.runAsNonRoot", "true"),
    ("imagekit-privilege-escalation", KRUISE, lambda b: container(b)["securityContext"].pop("allowPrivilegeEscalation"),
     "imagekit", "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation", "false"),
    ("imagekit-short-grace", KRUISE, lambda b: pod(b).update(terminationGracePeriodSeconds=1),
     "imagekit", "spec.template.spec.terminationGracePeriodSeconds", "flush"),
    ("imagekit-plain-with-kruise-gate", PLAIN, lambda b: pod(b).update(readinessGates=[{"conditionType": "InPlaceUpdateReady"}]),
     "imagekit", "spec.template.spec.readinessGates", "never"),
    ("imagekit-service-not-headless", KRUISE, lambda b: b["Service"]["spec"].pop("clusterIP"),
     "imagekit", "spec.serviceName", "headless"),
    ("imagekit-service-missing", KRUISE, _set(["StatefulSet", "spec", "serviceName"], "elsewhere"),
     "imagekit", "spec.serviceName", "names no Service"),
]


@pytest.mark.parametrize("flavor", list(Flavor), ids=[f.value for f in Flavor])
def test_unbroken_rendering_has_no_problems(flavor):
    assert validated(rendering_of(flavor)).problems == []


def _case(case: tuple) -> object:
    marks = [needs_crd] if case[3] == "kruise-crd" else []
    return pytest.param(*case[1:], id=case[0], marks=marks)


@pytest.mark.parametrize(("flavor", "mutate", "check", "path", "words"), [_case(case) for case in BROKEN])
def test_broken_manifest_is_refused(flavor, mutate, check, path, words):
    problems = validated(broken(flavor, mutate)).problems
    matching = [p for p in problems if p.check.startswith(check) and p.path.startswith(path) and words in p.message]
    assert matching, "\n".join(map(str, problems)) or "no problems reported"


def test_hostpath_ssd_without_per_pod_subdirectory_is_refused():
    spec = load_pipeline(WORDFREQ)
    rendering = render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, ssd=SsdMode.hostpath)))
    body = copy.deepcopy(rendering.workload().body)
    for mount in body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]:
        mount.pop("subPathExpr", None)
    problems = validated(Rendering("kruise", (rendering.manifests[0], Manifest("statefulset.yaml", body)))).problems
    assert any(p.check == "imagekit" and "per-pod subPathExpr" in p.message for p in problems)


def test_init_container_may_not_gain_more_than_chown():
    spec = load_pipeline(WORDFREQ)
    rendering = render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, ssd=SsdMode.hostpath)))
    body = copy.deepcopy(rendering.workload().body)
    body["spec"]["template"]["spec"]["initContainers"][0]["securityContext"]["capabilities"]["add"] = ["CHOWN", "SYS_ADMIN"]
    problems = validated(Rendering("kruise", (rendering.manifests[0], Manifest("statefulset.yaml", body)))).problems
    assert [p.path for p in problems] == ["spec.template.spec.initContainers[0].securityContext.capabilities.add"]


# --- the schemas are the real ones ------------------------------------------------------------------

@needs_crd
def test_kruise_crd_given_in_the_environment_is_checked_against(tmp_path):
    schemas = tmp_path / "crd"
    schemas.mkdir()
    shutil.copy(crd_path(), schemas)
    write_rendering(rendering_of(Flavor.kruise), tmp_path / "out")
    given = schemas / crd_path().name
    result = runner.invoke(app, ["deploy", "validate", str(tmp_path / "out"), "--output", "json"],
                           env={KRUISE_CRD_ENV: str(given)})
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kruise_crd"].startswith(str(given))
    assert "kruise-crd" in report["checks"] and report["not_checked"] == {}
    assert "not checked" not in result.stderr


def test_without_the_crd_render_and_validate_run_the_same_checks_and_say_so(tmp_path):
    out = tmp_path / "out"
    env = {KRUISE_CRD_ENV: ""}
    rendered = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-d", str(out)], env=env)
    checked = runner.invoke(app, ["deploy", "validate", str(out)], env=env)
    assert rendered.exit_code == checked.exit_code == 0, rendered.stderr + checked.stderr
    line = ("checked: kubernetes 1.28 schemas, Kruise webhook rules, API-server rules, imagekit rules; "
            "not checked: Kruise CRD schema (give --kruise-crd FILE or IMAGEKIT_KRUISE_CRD)")
    assert line in rendered.stderr.splitlines()
    assert line in checked.stdout.splitlines()


def test_plain_statefulset_needs_no_crd_and_says_nothing_is_missing(tmp_path):
    write_rendering(rendering_of(Flavor.statefulset), tmp_path)
    result = runner.invoke(app, ["deploy", "validate", str(tmp_path)], env={KRUISE_CRD_ENV: ""})
    assert result.exit_code == 0, result.stderr
    assert "checked: kubernetes 1.28 schemas, API-server rules, imagekit rules" in result.stdout.splitlines()


@pytest.mark.parametrize(("content", "words"), [
    (None, "no such file"),
    ("kind: [unclosed", "not YAML"),
    ("apiVersion: v1\nkind: Service\n", "not a CustomResourceDefinition"),
    ("kind: CustomResourceDefinition\nspec: {group: apps.kruise.io, names: {kind: CloneSet}}\n", "not StatefulSet"),
    ("kind: CustomResourceDefinition\nspec: {group: apps.kruise.io, names: {kind: StatefulSet}, versions: []}\n",
     "openAPIV3Schema"),
], ids=["missing", "not-yaml", "not-a-crd", "other-kind", "no-v1beta1"])
@pytest.mark.parametrize("how", ["flag", "env"])
def test_a_kruise_crd_that_is_not_one_is_refused_with_one_line(tmp_path, content, words, how):
    write_rendering(rendering_of(Flavor.kruise), tmp_path / "out")
    crd = tmp_path / "crd.yaml"
    if content is not None:
        crd.write_text(content)
    args, env = (["--kruise-crd", str(crd)], {}) if how == "flag" else ([], {KRUISE_CRD_ENV: str(crd)})
    for command in (["deploy", "validate", str(tmp_path / "out")],
                    ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "-d", str(tmp_path / "again")]):
        result = runner.invoke(app, [*command, *args], env=env)
        assert result.exit_code == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "fix:" in lines[0], result.stderr
        assert ("--kruise-crd" if how == "flag" else KRUISE_CRD_ENV) in lines[0]
    assert not (tmp_path / "again").exists()


def test_strict_crd_schema_rejects_unknown_fields_but_keeps_preserved_ones():
    schema = strict({"type": "object", "properties": {
        "known": {"type": "object", "properties": {"a": {"type": "string"}}},
        "free": {"x-kubernetes-preserve-unknown-fields": True},
    }})
    assert schema["additionalProperties"] is False
    assert schema["properties"]["known"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["free"]


@needs_crd
def test_kruise_crd_schema_alone_rejects_a_bad_advanced_statefulset():
    errors = KruiseSchema(crd_path()).errors({"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
                                    "metadata": {"name": "x"}, "spec": {"replicas": 1}})
    assert {e.message for e in errors} >= {"'selector' is a required property", "'template' is a required property"}


def test_unknown_kubernetes_version_is_refused(tmp_path):
    write_rendering(rendering_of(Flavor.statefulset), tmp_path)
    result = runner.invoke(app, ["deploy", "validate", str(tmp_path), "--kubernetes-version", "1.2"])
    assert result.exit_code == 2
    assert "pick one of" in result.stderr


# --- `imagekit deploy validate` on files ------------------------------------------------------------

def test_cli_validate_reports_every_problem_and_exits_2(tmp_path):
    write_rendering(rendering_of(Flavor.kruise), tmp_path)
    statefulset = tmp_path / "statefulset.yaml"
    body = yaml.safe_load(statefulset.read_text())
    del body["spec"]["template"]["spec"]["readinessGates"]
    body["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "150%"
    statefulset.write_text(yaml.safe_dump(body))
    result = runner.invoke(app, ["deploy", "validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "must contain InPlaceUpdateReady when podUpdatePolicy is InPlaceIfPossible [kruise-webhook]" in result.stderr
    assert "150%" in result.stderr
    assert result.stdout == ""
    as_json = runner.invoke(app, ["deploy", "validate", str(tmp_path), "--output", "json"])
    assert as_json.exit_code == 2
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert {p["check"] for p in report["problems"]} == {"kruise-webhook"}


def test_cli_validate_rejects_a_directory_without_manifests(tmp_path):
    result = runner.invoke(app, ["deploy", "validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no Kubernetes resources" in result.stderr
