"""How `imagekit pod` rolls pods to a new template (deploy/imagekit_deploy/rollout.py)."""
from __future__ import annotations

import copy
from typing import Any

from imagekit_deploy.rollout import (
    Action,
    decide,
    in_place_possible,
    not_emulated,
    template_revision,
    update_order,
    why_recreated,
)


def workload(image: str = "r.example/w:1", policy: str | None = "InPlaceIfPossible", **rolling: Any) -> dict[str, Any]:
    kruise = policy is not None
    update: dict[str, Any] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, **rolling}}
    if kruise:
        update["rollingUpdate"]["podUpdatePolicy"] = policy
    return {
        "apiVersion": "apps.kruise.io/v1beta1" if kruise else "apps/v1",
        "kind": "StatefulSet",
        "spec": {"replicas": 4, "podManagementPolicy": "Parallel", "updateStrategy": update,
                 "template": {"metadata": {"labels": {"app": "w"}},
                              "spec": {"terminationGracePeriodSeconds": 30,
                                       "containers": [{"name": "pipeline", "image": image,
                                                       "env": [{"name": "A", "value": "1"}],
                                                       "resources": {"limits": {"memory": "1Gi"}}}]}}},
    }


def changed(base: dict[str, Any], edit: Any) -> dict[str, Any]:
    new = copy.deepcopy(base)
    edit(new["spec"]["template"])
    return new


def test_the_revision_is_the_template_alone() -> None:
    old = workload()
    assert template_revision(old) == template_revision(workload(partition=3))  # the strategy is no part of it
    assert template_revision(old) != template_revision(workload("r.example/w:2"))


def test_images_env_values_and_labels_change_in_place_anything_else_recreates() -> None:
    old = workload()
    assert in_place_possible(old, workload("r.example/w:2"))
    assert in_place_possible(old, changed(old, lambda t: t["spec"]["containers"][0]["env"][0].update(value="2")))
    assert in_place_possible(old, changed(old, lambda t: t["metadata"]["labels"].update(extra="x")))
    assert not in_place_possible(old, changed(old, lambda t: t["spec"]["containers"][0]["env"].append(
        {"name": "B", "value": "1"})))
    assert not in_place_possible(old, changed(old, lambda t: t["spec"]["containers"][0]["resources"]["limits"].update(
        memory="2Gi")))
    assert not in_place_possible(old, changed(old, lambda t: t["spec"].update(terminationGracePeriodSeconds=5)))


def test_the_flavor_and_policy_decide_in_place_or_recreate() -> None:
    new = workload("r.example/w:2")
    assert decide(workload(), new) is Action.IN_PLACE
    assert decide(workload(), workload()) is Action.UNCHANGED
    resized = changed(workload(), lambda t: t["spec"]["containers"][0]["resources"]["limits"].update(memory="2Gi"))
    assert decide(workload(), resized) is Action.RECREATED
    assert "resources" in (why_recreated(workload(), resized) or "")
    assert decide(workload(policy="ReCreate"), workload("r.example/w:2", policy="ReCreate")) is Action.RECREATED
    assert decide(workload(policy="InPlaceOnly"), workload("r.example/w:2", policy="InPlaceOnly")) is Action.IN_PLACE
    plain_new = workload("r.example/w:2", policy=None)
    assert decide(workload(policy=None), plain_new) is Action.RECREATED
    assert "plain StatefulSet" in (why_recreated(workload(policy=None), plain_new) or "")
    assert why_recreated(workload(), new) is None
    assert update_order([0, 3, 1, 2]) == [3, 2, 1, 0]


def test_the_strategy_fields_the_local_runner_ignores_are_named() -> None:
    assert not_emulated(workload()) == []  # imagekit's rendering: partition 0, nothing else set
    assert not_emulated(workload(maxUnavailable=1, paused=False, minReadySeconds=0)) == []
    named = not_emulated(workload(policy="InPlaceOnly", partition=2, paused=True, maxUnavailable="50%",
                                  minReadySeconds=10, inPlaceUpdateStrategy={"gracePeriodSeconds": 5}))
    assert named == ["partition: 2", "paused: True", "maxUnavailable: 50%", "minReadySeconds: 10",
                     "inPlaceUpdateStrategy.gracePeriodSeconds: 5",
                     "podUpdatePolicy: InPlaceOnly (treated as InPlaceIfPossible)"]


def test_a_pod_is_in_place_updating_until_its_new_runtime_has_started_a_run() -> None:
    from imagekit_deploy.emulator.state import SetState
    from imagekit_deploy.emulator.status import Update, _update_state
    from imagekit_deploy.rollout import PodUpdate
    from imagekit_runtime.observe.journal import RunView

    new = workload("r.example/w:2")
    state = SetState(rendered="r", name="w", namespace="default", workload=new, ordinals=[0])
    current, old = template_revision(new), template_revision(workload())
    swapping = PodUpdate(kind="in-place", from_revision=old, to_revision=current, started_at=1.0)
    assert _update_state(state, current, swapping, True, RunView(runs=1, started_at=0.5)) == (Update.IN_PLACE, False)
    swapping.swapped_at = 2.0  # the new container is started: the old runtime's run does not count
    assert _update_state(state, current, swapping, True, RunView(runs=1, started_at=0.5)) == (Update.IN_PLACE, False)
    assert _update_state(state, current, swapping, True, RunView(runs=2, started_at=2.5)) == (Update.UPDATED, True)
    recreating = PodUpdate(kind="recreate", from_revision=old, to_revision=current, started_at=1.0)
    assert _update_state(state, current, recreating, False, RunView()) == (Update.RECREATING, True)
    assert _update_state(state, old, None, True, RunView(runs=1)) == (Update.OUTDATED, True)  # not rolled yet
