"""How the emulated controller rolls pods to a new template (deploy/imagekit_deploy/emulator/rollout.py)."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from imagekit_deploy.rollout import (
    Action,
    check_allowed,
    decide,
    in_place_possible,
    template_revision,
    update_order,
    update_strategy,
)
from imagekit_runtime.errors import UsageError


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


def test_the_flavour_and_policy_decide_in_place_or_recreate() -> None:
    kruise = update_strategy(workload(), 4)
    assert decide(kruise, 3, workload(), workload("r.example/w:2")) is Action.IN_PLACE
    assert decide(kruise, 3, workload(), workload()) is Action.UNCHANGED
    resized = changed(workload(), lambda t: t["spec"]["containers"][0]["resources"]["limits"].update(memory="2Gi"))
    assert decide(kruise, 3, workload(), resized) is Action.RECREATED
    recreate = update_strategy(workload(policy="ReCreate"), 4)
    assert decide(recreate, 3, workload(), workload("r.example/w:2")) is Action.RECREATED
    plain = update_strategy(workload(policy=None), 4)
    assert not plain.in_place
    assert decide(plain, 3, workload(policy=None), workload("r.example/w:2", policy=None)) is Action.RECREATED


def test_partition_paused_and_max_unavailable_are_honoured() -> None:
    held = update_strategy(workload(partition=2), 4)
    new = workload("r.example/w:2")
    assert [decide(held, o, workload(), new) for o in range(4)] == [Action.HELD, Action.HELD,
                                                                      Action.IN_PLACE, Action.IN_PLACE]
    assert decide(update_strategy(workload(paused=True), 4), 3, workload(), new) is Action.PAUSED
    assert update_strategy(workload(maxUnavailable=2), 4).max_unavailable == 2
    assert update_strategy(workload(maxUnavailable="50%"), 4).max_unavailable == 2
    assert update_strategy(workload(maxUnavailable="10%"), 4).max_unavailable == 1  # rounded down, at least 1
    ordered = workload(maxUnavailable=3)
    ordered["spec"]["podManagementPolicy"] = "OrderedReady"
    assert update_strategy(ordered, 4).max_unavailable == 1  # Kruise: more than 1 only with Parallel
    grace = workload(inPlaceUpdateStrategy={"gracePeriodSeconds": 5})
    assert update_strategy(grace, 4).grace_seconds == 5
    assert update_order([0, 3, 1, 2]) == [3, 2, 1, 0]


def test_in_place_only_refuses_a_change_it_cannot_make_in_place() -> None:
    only = update_strategy(workload(policy="InPlaceOnly"), 4)
    check_allowed(only, workload(), workload("r.example/w:2"), "w")
    resized = changed(workload(), lambda t: t["spec"]["containers"][0]["resources"]["limits"].update(memory="2Gi"))
    with pytest.raises(UsageError, match="InPlaceOnly"):
        check_allowed(only, workload(), resized, "w")


def test_a_pod_is_in_place_updating_until_its_new_runtime_has_started_a_run() -> None:
    from imagekit_deploy.emulator.state import SetState
    from imagekit_deploy.emulator.status import Update, _update_state
    from imagekit_deploy.rollout import PodUpdate
    from imagekit_runtime.journal import RunView

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
    assert _update_state(state, old, None, True, RunView(runs=1)) == (Update.OUTDATED, True)  # held by partition
