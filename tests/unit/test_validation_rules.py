"""Every rule of the deploy validation package, called in-process: each rule passes on a
rendered manifest and reports the one thing a mutation breaks, at the field it names.

The rules are pure functions of manifests (no schemas, no files): Kruise's webhook rules,
the API server's rules, and imagekit's own contract with the runtime.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagekit_core.spec import load_pipeline
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.ordinals import pod_ordinals, reserved_ordinals
from imagekit_deploy.renderer import Manifest, Rendering, render
from imagekit_deploy.settings import Flavor, SsdMode, resolve_settings
from imagekit_deploy.validate import (
    claim_rules,
    imagekit_rules,
    kruise_defaults,
    kruise_webhook_rules,
    metadata_rules,
    pod_spec_rules,
    statefulset_api_rules,
    storage_class_rules,
)

WORDFREQ = Path(__file__).resolve().parents[2] / "pipelines" / "wordfreq"
IMAGE = "registry.example.com/imagekit/wordfreq:1.0"
KRUISE, PLAIN = Flavor.kruise, Flavor.statefulset
HOSTPATH = "hostpath"  # a Kruise rendering with hostPath SSD (init container, subPathExpr)

Bodies = dict[str, dict[str, Any]]


def _rendering(flavor: Flavor, ssd: SsdMode) -> Rendering:
    spec = load_pipeline(WORDFREQ)
    return render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, flavor=flavor, ssd=ssd)))


BASES = {KRUISE: _rendering(KRUISE, SsdMode.local_pv), PLAIN: _rendering(PLAIN, SsdMode.local_pv),
         HOSTPATH: _rendering(KRUISE, SsdMode.hostpath)}


def bodies_of(base: Any) -> Bodies:
    return {m.kind: copy.deepcopy(m.body) for m in BASES[base].manifests}


def rendering_of(bodies: Bodies, base: Any) -> Rendering:
    manifests = tuple(Manifest(m.filename, bodies[m.kind]) for m in BASES[base].manifests if m.kind in bodies)
    return Rendering(BASES[base].flavor, manifests)


def sts(b: Bodies) -> dict[str, Any]:
    return b["StatefulSet"]


def spec(b: Bodies) -> dict[str, Any]:
    return sts(b)["spec"]


def pod(b: Bodies) -> dict[str, Any]:
    return spec(b)["template"]["spec"]


def container(b: Bodies) -> dict[str, Any]:
    return pod(b)["containers"][0]


def env(b: Bodies, name: str) -> dict[str, Any]:
    return next(entry for entry in container(b)["env"] if entry["name"] == name)


def mount(b: Bodies, path: str) -> dict[str, Any]:
    return next(m for m in container(b)["volumeMounts"] if m["mountPath"] == path)


def rolling(b: Bodies) -> dict[str, Any]:
    return spec(b)["updateStrategy"]["rollingUpdate"]


def claim_names(b: Bodies) -> list[Any]:
    return [c["metadata"]["name"] for c in spec(b).get("volumeClaimTemplates", [])]


# Each rule function, called as validation calls it.
RULES: dict[str, Callable[[Bodies, Any], list[tuple[str, str]]]] = {
    "webhook": lambda b, base: kruise_webhook_rules(sts(b)),
    "statefulset-api": lambda b, base: statefulset_api_rules(sts(b), apps_v1=sts(b)["apiVersion"] == "apps/v1"),
    "claim": lambda b, base: claim_rules(spec(b)["volumeClaimTemplates"][0]),
    "pod-spec": lambda b, base: pod_spec_rules(pod(b), claim_names(b)),
    "metadata": lambda b, base: [p for kind, body in b.items()
                                 for p in metadata_rules(body, namespaced=kind != "StorageClass")],
    "storage-class": lambda b, base: storage_class_rules(b["StorageClass"]),
    "imagekit": lambda b, base: imagekit_rules(sts(b), rendering_of(b, base)),
}
PASSING = [(rule, base) for rule in RULES for base in (KRUISE, PLAIN, HOSTPATH)
           if not (rule == "webhook" and base == PLAIN) and not (rule == "storage-class" and base == HOSTPATH)]


@pytest.mark.parametrize(("rule", "base"), PASSING, ids=[f"{r}-{getattr(b, 'value', b)}" for r, b in PASSING])
def test_every_rule_passes_a_rendered_manifest(rule, base):
    assert RULES[rule](bodies_of(base), base) == []


def put(path: list[Any], value: Any) -> Callable[[Bodies], None]:
    def mutate(b: Bodies) -> None:
        target: Any = b
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def drop(path: list[Any]) -> Callable[[Bodies], None]:
    def mutate(b: Bodies) -> None:
        target: Any = b
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


SS, SPEC, TPL = "StatefulSet", ["StatefulSet", "spec"], ["StatefulSet", "spec", "template", "spec"]
C0 = [*TPL, "containers", 0]

# (id, base, rule, mutation, field path the problem starts with, words in its message)
FAILING = [
    # --- Kruise's validating webhook ---
    ("webhook-pod-management-policy", KRUISE, "webhook", put([*SPEC, "podManagementPolicy"], "AllAtOnce"),
     "spec.podManagementPolicy", "must be OrderedReady or Parallel"),
    ("webhook-reserve-word", KRUISE, "webhook", put([*SPEC, "reserveOrdinals"], ["one"]), "spec.reserveOrdinals[0]", "not an ordinal"),
    ("webhook-reserve-digits-as-string", KRUISE, "webhook", put([*SPEC, "reserveOrdinals"], [1, "3"]),
     "spec.reserveOrdinals[1]", "not an ordinal"),
    ("webhook-reserve-negative", KRUISE, "webhook", put([*SPEC, "reserveOrdinals"], [-1]), "spec.reserveOrdinals[0]", "negative"),
    ("webhook-reserve-backwards", KRUISE, "webhook", put([*SPEC, "reserveOrdinals"], ["3-1"]), "spec.reserveOrdinals[0]", "starts after"),
    ("webhook-reserve-bool", KRUISE, "webhook", put([*SPEC, "reserveOrdinals"], [True]), "spec.reserveOrdinals[0]", "not an ordinal"),
    ("webhook-scale-max-unavailable", KRUISE, "webhook", put([*SPEC, "scaleStrategy"], {"maxUnavailable": 0}),
     "spec.scaleStrategy.maxUnavailable", "less than 1"),
    ("webhook-on-delete-with-rolling", KRUISE, "webhook", put([*SPEC, "updateStrategy", "type"], "OnDelete"),
     "spec.updateStrategy.rollingUpdate", "only allowed"),
    ("webhook-strategy-type", KRUISE, "webhook", put([*SPEC, "updateStrategy", "type"], "Sometimes"),
     "spec.updateStrategy.type", "RollingUpdate or OnDelete"),
    ("webhook-partition", KRUISE, "webhook", lambda b: rolling(b).update(partition=-1),
     "spec.updateStrategy.rollingUpdate.partition", ">= 0"),
    ("webhook-min-ready", KRUISE, "webhook", lambda b: rolling(b).update(minReadySeconds=301),
     "spec.updateStrategy.rollingUpdate.minReadySeconds", "from 0 to 300"),
    ("webhook-max-unavailable-zero", KRUISE, "webhook", lambda b: rolling(b).update(maxUnavailable=0),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "less than 1"),
    ("webhook-max-unavailable-percent", KRUISE, "webhook", lambda b: rolling(b).update(maxUnavailable="150%"),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "1% to 100%"),
    ("webhook-max-unavailable-word", KRUISE, "webhook", lambda b: rolling(b).update(maxUnavailable="two"),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "integer or a percentage"),
    ("webhook-max-unavailable-needs-parallel", KRUISE, "webhook",
     lambda b: (spec(b).update(podManagementPolicy="OrderedReady"), rolling(b).update(maxUnavailable=2)),
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "Parallel"),
    ("webhook-pod-update-policy", KRUISE, "webhook", lambda b: rolling(b).update(podUpdatePolicy="Sometimes"),
     "spec.updateStrategy.rollingUpdate.podUpdatePolicy", "must be one of"),
    ("webhook-in-place-needs-gate", KRUISE, "webhook", drop([*TPL, "readinessGates"]),
     "spec.template.spec.readinessGates", "InPlaceUpdateReady"),
    ("webhook-unordered-needs-parallel", KRUISE, "webhook",
     lambda b: (spec(b).update(podManagementPolicy="OrderedReady"), rolling(b).update(unorderedUpdate={})),
     "spec.updateStrategy.rollingUpdate.unorderedUpdate", "Parallel"),
    ("webhook-retention", KRUISE, "webhook", put([*SPEC, "persistentVolumeClaimRetentionPolicy", "whenDeleted"], "Keep"),
     "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain or Delete"),
    ("webhook-replicas", KRUISE, "webhook", put([*SPEC, "replicas"], -1), "spec.replicas", ">= 0"),
    # --- the API server: the StatefulSet ---
    ("api-empty-selector", PLAIN, "statefulset-api", put([*SPEC, "selector"], {}), "spec.selector", "empty selector"),
    ("api-selector-mismatch", KRUISE, "statefulset-api", put([*SPEC, "selector", "matchLabels", "app.kubernetes.io/name"], "x"),
     "spec.template.metadata.labels", "do not match"),
    ("api-selector-expression", PLAIN, "statefulset-api",
     put([*SPEC, "selector", "matchExpressions"], [{"key": "tier", "operator": "Exists"}]),
     "spec.template.metadata.labels", "do not match"),
    ("api-restart-policy", PLAIN, "statefulset-api", put([*TPL, "restartPolicy"], "Never"),
     "spec.template.spec.restartPolicy", "only Always"),
    ("api-active-deadline", KRUISE, "statefulset-api", put([*TPL, "activeDeadlineSeconds"], 60),
     "spec.template.spec.activeDeadlineSeconds", "not supported"),
    ("api-plain-pod-management", PLAIN, "statefulset-api", put([*SPEC, "podManagementPolicy"], "Fast"),
     "spec.podManagementPolicy", "OrderedReady or Parallel"),
    ("api-plain-strategy", PLAIN, "statefulset-api", put([*SPEC, "updateStrategy"], {"type": "InPlace"}),
     "spec.updateStrategy.type", "RollingUpdate or OnDelete"),
    ("api-plain-partition", PLAIN, "statefulset-api", put([*SPEC, "updateStrategy"], {"rollingUpdate": {"partition": -2}}),
     "spec.updateStrategy.rollingUpdate.partition", ">= 0"),
    ("api-plain-retention", PLAIN, "statefulset-api", put([*SPEC, "persistentVolumeClaimRetentionPolicy", "whenScaled"], "Keep"),
     "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Retain or Delete"),
    ("api-plain-replicas", PLAIN, "statefulset-api", put([*SPEC, "replicas"], -1), "spec.replicas", ">= 0"),
    ("api-claim-name", KRUISE, "statefulset-api", put([*SPEC, "volumeClaimTemplates", 0, "metadata", "name"], "PV"),
     "spec.volumeClaimTemplates[0].metadata.name", "DNS label"),
    ("api-claim-twice", KRUISE, "statefulset-api", put([*SPEC, "volumeClaimTemplates", 1, "metadata", "name"], "pv"),
     "spec.volumeClaimTemplates[1].metadata.name", "used twice"),
    # --- the API server: claims ---
    ("claim-access-modes", KRUISE, "claim", put([*SPEC, "volumeClaimTemplates", 0, "spec", "accessModes"], []),
     "spec.accessModes", "at least one"),
    ("claim-storage-missing", KRUISE, "claim", drop([*SPEC, "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage"]),
     "spec.resources.requests.storage", "required"),
    ("claim-storage-zero", KRUISE, "claim", put([*SPEC, "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage"], "0"),
     "spec.resources.requests.storage", "positive quantity"),
    ("claim-storage-gb", KRUISE, "claim", put([*SPEC, "volumeClaimTemplates", 0, "spec", "resources", "requests", "storage"], "10GB"),
     "spec.resources.requests.storage", "positive quantity"),
    # --- the API server: the pod spec ---
    ("pod-volume-name", KRUISE, "pod-spec", put([*TPL, "volumes", 0, "name"], "Shm"), "volumes[0].name", "DNS label"),
    ("pod-volume-twice", KRUISE, "pod-spec", lambda b: pod(b)["volumes"].append(copy.deepcopy(pod(b)["volumes"][0])),
     "volumes[2].name", "used twice"),
    ("pod-volume-is-a-claim", KRUISE, "pod-spec", lambda b: pod(b)["volumes"].append({"name": "pv", "emptyDir": {}}),
     "volumes[2].name", "also a volumeClaimTemplate"),
    ("pod-volume-two-sources", KRUISE, "pod-spec", lambda b: pod(b)["volumes"][1].update(hostPath={"path": "/x"}),
     "volumes[1]", "exactly one volume source"),
    ("pod-volume-size-limit", KRUISE, "pod-spec", put([*TPL, "volumes", 0, "emptyDir", "sizeLimit"], "1gb"),
     "volumes[0].emptyDir.sizeLimit", "not a quantity"),
    ("pod-no-containers", KRUISE, "pod-spec", put([*TPL, "containers"], []), "containers", "at least one"),
    ("pod-container-name", KRUISE, "pod-spec", put([*C0, "name"], "Pipeline"), "containers[0].name", "DNS label"),
    ("pod-container-twice", HOSTPATH, "pod-spec", put([*TPL, "initContainers", 0, "name"], "pipeline"),
     "containers[0].name", "used twice"),
    ("pod-mount-unknown", KRUISE, "pod-spec", lambda b: container(b)["volumeMounts"].append({"name": "x", "mountPath": "/x"}),
     "containers[0].volumeMounts[4].name", "names no volume"),
    ("pod-mount-relative", KRUISE, "pod-spec", lambda b: mount(b, "/tmp").update(mountPath="tmp"),
     "containers[0].volumeMounts[1].mountPath", "absolute"),
    ("pod-mount-twice", KRUISE, "pod-spec", lambda b: mount(b, "/tmp").update(mountPath="/dev/shm"),
     "containers[0].volumeMounts[1].mountPath", "mounted twice"),
    ("pod-mount-sub-path-both", HOSTPATH, "pod-spec", lambda b: mount(b, "/var/lib/imagekit/ssd").update(subPath="a"),
     "containers[0].volumeMounts", "mutually exclusive"),
    ("pod-mount-sub-path-escapes", KRUISE, "pod-spec", lambda b: mount(b, "/tmp").update(subPath="../x"),
     "containers[0].volumeMounts[1].subPath", "without '..'"),
    ("pod-env-name", KRUISE, "pod-spec", lambda b: container(b)["env"].append({"name": "1 BAD", "value": "x"}),
     "containers[0].env", "not a valid environment variable name"),
    ("pod-env-value-and-from", KRUISE, "pod-spec", lambda b: env(b, "IMAGEKIT_POD_NAME").update(value="x"),
     "containers[0].env", "mutually exclusive"),
    ("pod-env-field-path", KRUISE, "pod-spec",
     lambda b: env(b, "IMAGEKIT_POD_NAME")["valueFrom"]["fieldRef"].update(fieldPath="metadata.generateName"),
     "containers[0].env", "not supported in env"),
    ("pod-resource-not-quantity", KRUISE, "pod-spec", put([*C0, "resources", "limits", "memory"], "2GB"),
     "containers[0].resources.limits.memory", "not a quantity"),
    ("pod-request-above-limit", KRUISE, "pod-spec", put([*C0, "resources", "requests", "memory"], "64Gi"),
     "containers[0].resources.requests.memory", "more than the limit"),
    ("pod-grace-negative", KRUISE, "pod-spec", put([*TPL, "terminationGracePeriodSeconds"], -1),
     "terminationGracePeriodSeconds", ">= 0"),
    # --- the API server: metadata and StorageClass ---
    ("metadata-name", KRUISE, "metadata", put([SS, "metadata", "name"], "Word_Freq"), "metadata.name", "DNS subdomain"),
    ("metadata-namespace-on-cluster-scoped", KRUISE, "metadata", put(["StorageClass", "metadata", "namespace"], "x"),
     "metadata.namespace", "cluster-scoped"),
    ("metadata-label-key", KRUISE, "metadata", put([SS, "metadata", "labels", "-bad"], "x"), "metadata.labels", "qualified name"),
    ("metadata-label-value", KRUISE, "metadata", put(["Service", "metadata", "labels", "tier"], "a b"),
     "metadata.labels.tier", "label value"),
    ("storage-class-provisioner", KRUISE, "storage-class", drop(["StorageClass", "provisioner"]), "provisioner", "required"),
    ("storage-class-binding-mode", KRUISE, "storage-class", put(["StorageClass", "volumeBindingMode"], "Later"),
     "volumeBindingMode", "Immediate or WaitForFirstConsumer"),
    ("storage-class-local-immediate", KRUISE, "storage-class", put(["StorageClass", "volumeBindingMode"], "Immediate"),
     "volumeBindingMode", "WaitForFirstConsumer"),
    ("storage-class-reclaim", KRUISE, "storage-class", put(["StorageClass", "reclaimPolicy"], "Recycle"),
     "reclaimPolicy", "Retain or Delete"),
    # --- imagekit's contract ---
    ("imagekit-zero-replicas", KRUISE, "imagekit", put([*SPEC, "replicas"], 0), "spec.replicas", "at least one pod"),
    ("imagekit-no-pipeline-container", KRUISE, "imagekit",
     lambda b: container(b).update(env=[e for e in container(b)["env"] if e["name"] != "IMAGEKIT_SHARD_COUNT"]),
     "spec.template.spec.containers", "IMAGEKIT_SHARD_COUNT"),
    ("imagekit-shard-index", KRUISE, "imagekit", lambda b: env(b, "IMAGEKIT_SHARD_INDEX")["valueFrom"]["fieldRef"].update(
        fieldPath="metadata.name"), "spec.template.spec.containers[0].env", "apps.kubernetes.io/pod-index"),
    ("imagekit-pod-name", KRUISE, "imagekit", lambda b: env(b, "IMAGEKIT_POD_NAME")["valueFrom"]["fieldRef"].update(
        fieldPath="metadata.namespace"), "spec.template.spec.containers[0].env", "metadata.name"),
    ("imagekit-shard-count", KRUISE, "imagekit", lambda b: env(b, "IMAGEKIT_SHARD_COUNT").update(value="0"),
     "spec.template.spec.containers[0].env", "whole number >= 1"),
    ("imagekit-ordinal-beyond-shards", KRUISE, "imagekit", put([*SPEC, "reserveOrdinals"], ["0-1"]),
     "spec.replicas", "ordinal(s) 2, 3"),
    ("imagekit-plain-ordinals-from-start", PLAIN, "imagekit", put([*SPEC, "ordinals"], {"start": 1}),
     "spec.replicas", "ordinal(s) 2"),
    ("imagekit-shm-not-memory", KRUISE, "imagekit", drop([*TPL, "volumes", 0, "emptyDir", "medium"]),
     "spec.template.spec.containers[0].volumeMounts", "medium Memory"),
    ("imagekit-shm-no-size-limit", KRUISE, "imagekit", drop([*TPL, "volumes", 0, "emptyDir", "sizeLimit"]),
     "spec.template.spec.volumes", "needs a sizeLimit"),
    ("imagekit-shm-milli", KRUISE, "imagekit", put([*TPL, "volumes", 0, "emptyDir", "sizeLimit"], "512m"),
     "spec.template.spec.volumes", "512Mi"),
    ("imagekit-no-memory-limit", KRUISE, "imagekit", drop([*C0, "resources", "limits"]),
     "spec.template.spec.containers[0].resources.limits.memory", "required"),
    ("imagekit-shm-above-limit", KRUISE, "imagekit", put([*TPL, "volumes", 0, "emptyDir", "sizeLimit"], "4Gi"),
     "spec.template.spec.containers[0].resources.limits.memory", "not larger than shm"),
    ("imagekit-no-room-beside-shm", KRUISE, "imagekit", put([*C0, "resources", "limits", "memory"], "1100Mi"),
     "spec.template.spec.containers[0].resources.limits.memory", "128Mi"),
    ("imagekit-shm-dir", KRUISE, "imagekit", lambda b: env(b, "IMAGEKIT_SHM_DIR").update(value="/tmp/shm"),
     "spec.template.spec.containers[0].env", "not under /dev/shm"),
    ("imagekit-no-tmp", KRUISE, "imagekit", lambda b: container(b)["volumeMounts"].remove(mount(b, "/tmp")),
     "spec.template.spec.containers[0].volumeMounts", "/tmp needs a volume"),
    ("imagekit-checkpoint-outside-mounts", KRUISE, "imagekit", lambda b: env(b, "IMAGEKIT_PV_DIR").update(value="/srv/pv"),
     "spec.template.spec.containers[0].env", "not under a checkpoint volume mount"),
    ("imagekit-checkpoint-read-only", KRUISE, "imagekit", lambda b: mount(b, "/var/lib/imagekit/pv").update(readOnly=True),
     "spec.template.spec.containers[0].volumeMounts", "mounted readOnly"),
    ("imagekit-pv-on-emptydir", KRUISE, "imagekit",
     lambda b: (spec(b)["volumeClaimTemplates"].pop(0), pod(b)["volumes"].append({"name": "pv", "emptyDir": {}})),
     "spec.template.spec.containers[0].volumeMounts", "does not survive the node"),
    ("imagekit-hostpath-shared-by-pods", HOSTPATH, "imagekit", lambda b: mount(b, "/var/lib/imagekit/ssd").pop("subPathExpr"),
     "spec.template.spec.containers[0].volumeMounts", "per-pod subPathExpr"),
    ("imagekit-claims-deleted", KRUISE, "imagekit", put([*SPEC, "persistentVolumeClaimRetentionPolicy", "whenScaled"], "Delete"),
     "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "must be Retain"),
    ("imagekit-run-as-root", KRUISE, "imagekit", lambda b: (container(b)["securityContext"].pop("runAsNonRoot"),
                                                           pod(b)["securityContext"].pop("runAsNonRoot")),
     "spec.template.spec.containers[0].securityContext.runAsNonRoot", "must be true"),
    ("imagekit-uid-0", KRUISE, "imagekit", put([*C0, "securityContext", "runAsUser"], 0),
     "spec.template.spec.containers[0].securityContext.runAsUser", "not be 0"),
    ("imagekit-writable-root", KRUISE, "imagekit", put([*C0, "securityContext", "readOnlyRootFilesystem"], False),
     "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem", "must be true"),
    ("imagekit-privilege-escalation", HOSTPATH, "imagekit",
     drop([*TPL, "initContainers", 0, "securityContext", "allowPrivilegeEscalation"]),
     "spec.template.spec.initContainers[0].securityContext.allowPrivilegeEscalation", "must be false"),
    ("imagekit-privileged", KRUISE, "imagekit", put([*C0, "securityContext", "privileged"], True),
     "spec.template.spec.containers[0].securityContext.privileged", "must not be true"),
    ("imagekit-capabilities-kept", KRUISE, "imagekit", drop([*C0, "securityContext", "capabilities"]),
     "spec.template.spec.containers[0].securityContext.capabilities.drop", "ALL"),
    ("imagekit-capability-added", KRUISE, "imagekit", put([*C0, "securityContext", "capabilities", "add"], ["CHOWN"]),
     "spec.template.spec.containers[0].securityContext.capabilities.add", "not allowed"),
    ("imagekit-short-grace", KRUISE, "imagekit", put([*TPL, "terminationGracePeriodSeconds"], 5),
     "spec.template.spec.terminationGracePeriodSeconds", "flush"),
    ("imagekit-plain-with-kruise-gate", PLAIN, "imagekit", put([*TPL, "readinessGates"], [{"conditionType": "InPlaceUpdateReady"}]),
     "spec.template.spec.readinessGates", "never become Ready"),
    ("imagekit-service-missing", KRUISE, "imagekit", put([*SPEC, "serviceName"], "elsewhere"), "spec.serviceName", "names no Service"),
    ("imagekit-service-not-headless", KRUISE, "imagekit", drop(["Service", "spec", "clusterIP"]), "spec.serviceName", "headless"),
    ("imagekit-service-selects-others", KRUISE, "imagekit", put(["Service", "spec", "selector"], {"app": "other"}),
     "spec.serviceName", "selector does not match"),
]


@pytest.mark.parametrize(("base", "rule", "mutate", "path", "words"), [case[1:] for case in FAILING],
                         ids=[case[0] for case in FAILING])
def test_each_rule_reports_what_breaks_it(base, rule, mutate, path, words):
    bodies = bodies_of(base)
    mutate(bodies)
    found = RULES[rule](bodies, base)
    assert any(p.startswith(path) and words in m for p, m in found), found or "no problems"
    assert RULES[rule](bodies_of(base), base) == []


def test_kruise_defaults_fill_what_the_mutating_webhook_fills():
    defaulted = kruise_defaults({"spec": {}})["spec"]
    assert defaulted["podManagementPolicy"] == "OrderedReady"
    assert defaulted["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {
        "partition": 0, "maxUnavailable": 1, "podUpdatePolicy": "ReCreate", "minReadySeconds": 0}}
    assert defaulted["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert kruise_webhook_rules({"spec": {}}) == []


# --- reserveOrdinals, as Kruise reads them ------------------------------------------------------

@pytest.mark.parametrize(("entries", "reserved"), [
    ([], set()), ([2], {2}), (["1-3"], {1, 2, 3}), ([0, "2-2", "4-5"], {0, 2, 4, 5}), ([1, 1], {1}), (None, set()),
])
def test_reserve_ordinals_accepted(entries, reserved):
    found = reserved_ordinals(entries)
    assert found.ordinals == reserved and found.problems == ()


@pytest.mark.parametrize("entry", ["3", "a-b", "1-", "-1", "1-2-3", " 1-2", -1, 1.5, True, None, "5-4"])
def test_reserve_ordinals_refused(entry):
    found = reserved_ordinals([0, entry])
    assert [p.path for p in found.problems] == ["spec.reserveOrdinals[1]"]
    assert found.ordinals == {0}


def test_pod_ordinals_skip_reserved_ones():
    assert pod_ordinals(3, frozenset({1})) == [0, 2, 3]
    assert pod_ordinals(2, frozenset({0, 1}), start=0) == [2, 3]
    assert pod_ordinals(2, start=5) == [5, 6]
    assert pod_ordinals(0) == [] and pod_ordinals(-1) == []


def test_the_pod_emulator_reads_reserve_ordinals_with_the_same_parser():
    from imagekit_core.errors import UsageError
    from imagekit_deploy.emulator.blueprint import set_blueprint

    bodies = bodies_of(KRUISE)
    spec(bodies).update(replicas=2, reserveOrdinals=["0-1"])
    assert set_blueprint(rendering_of(bodies, KRUISE)).ordinals() == [2, 3]
    spec(bodies).update(reserveOrdinals=["1"])  # Kruise's webhook refuses a string that is not a range
    with pytest.raises(UsageError, match=r"spec\.reserveOrdinals\[0\]"):
        set_blueprint(rendering_of(bodies, KRUISE))


def test_the_pod_emulator_reads_sizes_with_the_quantity_parser():
    from imagekit_core.errors import UsageError
    from imagekit_deploy.emulator.blueprint import pod_blueprint

    bodies = bodies_of(KRUISE)
    put([*C0, "resources", "limits"], {"memory": "2304Mi", "cpu": "500m"})(bodies)
    pod_plan = pod_blueprint(sts(bodies), "wordfreq", "default", 0)
    assert pod_plan.shm_size == 2**30
    assert (pod_plan.container.memory_limit, pod_plan.container.nano_cpus) == (2304 * 2**20, 500_000_000)
    put([*TPL, "volumes", 0, "emptyDir", "sizeLimit"], "512m")(bodies)
    with pytest.raises(UsageError, match="512Mi"):
        pod_blueprint(sts(bodies), "wordfreq", "default", 0)
