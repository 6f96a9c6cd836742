"""`imagekit pod up` and `imagekit pod apply`: make the set's pods match a rendering.

Missing pods are created (all at once). Pods already up from the same template are kept. Pods up from
another template are rolled (rollout.py): in place when Kruise would, else deleted and created again; one
at a time, highest ordinal first, each waited for until its new runtime has started (the pod is ready
again). The rest of the update strategy is the real controllers' (docs/deploy.md). With a platform
(`up --platform linux/arm64`), the template's images are replaced by that platform's first (platform_images.py).
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imagekit_core.errors import UsageError
from imagekit_core.platforms import parse_platform

from ..rollout import (
    Action,
    PodUpdate,
    UpdateKind,
    decide,
    not_emulated,
    template_revision,
    update_order,
    why_recreated,
)
from ..writer import load_rendered
from .blueprint import PodBlueprint, SetBlueprint, pod_name, set_blueprint
from .engine import Engine
from .platform_images import RegistryLookup, for_platform, template_images
from .pods import PodFailed, PodSet
from .state import SetState, StateDir, default_state_dir
from .status import read_run

READY_TIMEOUT = 300.0


@dataclass
class UpReport:
    state_dir: Path
    name: str
    namespace: str
    revision: str
    pods: list[dict[str, Any]]
    not_honoured: list[str]  # update-strategy fields the rendering sets that the local runner ignores


@dataclass(frozen=True)
class PodOptions:
    """What `up` gives every pod beyond the rendering; None: the running set's (nothing for a new set)."""

    params: dict[str, str] | None = None
    network: str | None = None          # a Docker network the pods join
    secrets: dict[str, str] | None = None  # the emulated Secrets (secrets.py)
    platform: str | None = None  # `linux/arm64`: each image replaced by that platform's (platform_images.py)


def _new_state(rendered: Path, blueprint: SetBlueprint, ordinals: list[int], options: PodOptions,
               previous: SetState | None) -> SetState:
    state = SetState(rendered=str(rendered.resolve()), name=blueprint.name, namespace=blueprint.namespace,
                     workload=blueprint.workload, ordinals=ordinals, params=dict(options.params or {}),
                     network=options.network, secrets=dict(options.secrets or {}), platform=options.platform)
    if previous is not None:
        state.restarts, state.kills, state.updates = previous.restarts, previous.kills, previous.updates
        state.revisions = dict(previous.revisions)
        state.revisions.setdefault(template_revision(previous.workload), previous.workload)
        # A pod of a state written before revisions were kept runs the previous template.
        known = {pod_name(previous.name, o): template_revision(previous.workload) for o in previous.ordinals}
        state.pod_revisions = {**known, **previous.pod_revisions}
    state.revisions[template_revision(blueprint.workload)] = blueprint.workload
    return state


def _check_options(state_dir: StateDir, previous: SetState | None, blueprint: SetBlueprint,
                   options: PodOptions) -> PodOptions:
    """The options the set runs with: those given, else the running set's (a change needs `down` first)."""
    if previous is None:
        return options
    if previous.name != blueprint.name:
        raise UsageError(f"{state_dir.root} already runs the pods of StatefulSet {previous.name}, not {blueprint.name} "
                         f"(fix: another --state-dir, or `imagekit pod down --state-dir {state_dir.root}` first)")
    running = PodOptions(params=previous.params, network=previous.network, secrets=previous.secrets,
                         platform=previous.platform)
    for flag, given, kept in (("--param", options.params, running.params),
                              ("--network", options.network, running.network),
                              ("--secret", options.secrets, running.secrets),
                              ("--platform", options.platform, running.platform)):
        if given is not None and given != kept:
            raise UsageError(f"{state_dir.root} already runs pods with other {flag} values "
                             f"(fix: the same {flag} values, none to keep them, or `imagekit pod down --state-dir "
                             f"{state_dir.root}` first)")
    return running


class _Rollout:
    """Carries out one apply on a set whose state is saved after every step, so `pod status` follows it."""

    def __init__(self, pods: PodSet, state: SetState, timeout: float) -> None:
        self.pods = pods
        self.state = state
        self.timeout = timeout
        self.revision = template_revision(state.workload)
        self._lock = threading.Lock()

    def save(self) -> None:
        with self._lock:
            self.pods.state_dir.save(self.state)

    def create(self, ordinal: int) -> None:
        name = pod_name(self.state.name, ordinal)
        self.state.pod_revisions[name] = self.revision
        pod = self.pods.blueprint(self.state, ordinal)
        self.pods.create_pod(self.state, pod)
        self.state.restarts.pop(name, None)  # a new pod counts from 0
        self.state.updates.pop(name, None)

    def update(self, ordinal: int, action: Action) -> None:
        old = self.pods.blueprint(self.state, ordinal)
        in_place = action is Action.IN_PLACE
        record = PodUpdate(kind=(UpdateKind.IN_PLACE if in_place else UpdateKind.RECREATE).value,
                           from_revision=self.state.pod_revisions.get(old.name, ""), to_revision=self.revision,
                           started_at=time.time())
        self.state.updates[old.name] = record.to_json()  # InPlaceUpdateReady false from here on
        self.save()
        self.state.pod_revisions[old.name] = self.revision
        new = self.pods.blueprint(self.state, ordinal)
        record.swapped_at = time.time()
        if in_place:
            counted = self.pods.replace_pipeline(self.state, new)
            self.state.restarts[new.name] = self.state.restarts.get(new.name, 0) + counted + 1
        else:
            self.pods.remove_pod(old, old.grace_seconds)
            self.state.restarts.pop(new.name, None)
            self.pods.create_pod(self.state, new)
        self.save()
        self.wait_ready(new, record)
        record.ready_at = time.time()
        self.state.updates[new.name] = record.to_json()
        self.save()

    def wait_ready(self, pod: PodBlueprint, record: PodUpdate) -> None:
        """Until the new runtime has started a run: the pipeline container runs and its journal has its run."""
        deadline = time.monotonic() + self.timeout
        engine = self.pods.engine
        while time.monotonic() < deadline:
            if engine.state(self.pods.container_name(pod.name, pod.container.name)).running \
                    and record.runtime_started(read_run(self.pods, pod)):
                return
            time.sleep(0.1)
        raise PodFailed(f"pod {pod.name}: its new runtime did not start within {self.timeout:.0f}s of the update "
                        f"(fix: see `docker logs {self.pods.container_name(pod.name, pod.container.name)}`)")


def _check_shards(blueprint: SetBlueprint, ordinals: list[int], replicas: int | None) -> None:
    """Every pod must be a shard of the rendering: an ordinal at or past IMAGEKIT_SHARD_COUNT would restart forever."""
    if not ordinals:
        return
    count = blueprint.pod(ordinals[0]).shard_count
    if count.isdigit() and max(ordinals) >= int(count):
        raise UsageError(f"--replicas {replicas}: the rendering holds {count} shard(s) (IMAGEKIT_SHARD_COUNT={count}), "
                         f"so pod ordinal {max(ordinals)} would be no shard (fix: re-render with --replicas "
                         f"{replicas}, or pass at most {count})")


def rendered_images(rendered: Path) -> list[str]:
    """The images a rendering's pods run (init containers' included), each once."""
    return template_images(set_blueprint(load_rendered(rendered)).workload)


def apply(rendered: Path, state_root: Path | None, replicas: int | None, options: PodOptions | None = None,
          timeout: float = READY_TIMEOUT, registry: RegistryLookup | None = None) -> UpReport:
    """Create what is missing, keep what is current, roll what runs another template. An option left None keeps
    the set's (none for a new set). registry finds a platform's image in a registry, for a set with a platform."""
    blueprint = set_blueprint(load_rendered(rendered))
    state_dir = StateDir(state_root) if state_root is not None else default_state_dir(blueprint.name)
    if replicas is not None and replicas < 0:
        raise UsageError(f"--replicas {replicas} is negative (fix: 0 or more)")
    with state_dir.locked():
        return _apply(rendered, blueprint, state_dir, replicas, options, timeout, registry)


def _apply(rendered: Path, blueprint: SetBlueprint, state_dir: StateDir, replicas: int | None,
           options: PodOptions | None, timeout: float, registry: RegistryLookup | None) -> UpReport:
    engine = Engine()
    previous = state_dir.load() if state_dir.exists() else None
    chosen = _check_options(state_dir, previous, blueprint, options or PodOptions())
    if chosen.network is not None:
        engine.check_network(chosen.network)
    if chosen.platform is not None:  # the template as the pods run it: with that platform's images
        workload = for_platform(blueprint.workload, parse_platform(chosen.platform), engine, registry)
        blueprint = replace(blueprint, workload=workload)
    ordinals = blueprint.ordinals(replicas)
    _check_shards(blueprint, ordinals, replicas)
    state = _new_state(rendered, blueprint, ordinals, chosen, previous)
    pods = PodSet(state_dir, engine)
    rollout = _Rollout(pods, state, timeout)
    actions: dict[int, Action] = {}
    why: dict[int, str] = {}  # a recreated pod: why not in place
    for ordinal in ordinals:  # decided before anything changes
        if not pods.pod_is_whole(pods.blueprint(state, ordinal)):
            actions[ordinal] = Action.CREATED
            continue
        old = state.workload_of(pod_name(state.name, ordinal))
        actions[ordinal] = decide(old, blueprint.workload)
        if actions[ordinal] is Action.RECREATED:
            why[ordinal] = why_recreated(old, blueprint.workload) or "the update strategy recreates pods"
    state_dir.save(state)  # then, so that `down` can clean up whatever happens next
    for gone in sorted(set(previous.ordinals if previous else []) - set(ordinals)):
        pods.remove_pod(pods.blueprint(state, gone))  # scaled down: claims stay, as with whenScaled: Retain
        state.pod_revisions.pop(pod_name(state.name, gone), None)
    created = [o for o in ordinals if actions[o] is Action.CREATED]
    with ThreadPoolExecutor(max_workers=max(1, min(4, len(created)))) as pool:
        list(pool.map(rollout.create, created))
    rollout.save()
    for ordinal in update_order(ordinals):
        if actions[ordinal] in (Action.IN_PLACE, Action.RECREATED):
            rollout.update(ordinal, actions[ordinal])
    in_use = {*state.pod_revisions.values(), rollout.revision}
    state.revisions = {revision: workload for revision, workload in state.revisions.items() if revision in in_use}
    rollout.save()
    return UpReport(state_dir=state_dir.root, name=blueprint.name, namespace=blueprint.namespace,
                    revision=rollout.revision, not_honoured=not_emulated(blueprint.workload),
                    pods=[{"pod": pod_name(state.name, o), "ordinal": o, "action": actions[o].value,
                           "revision": state.pod_revisions.get(pod_name(state.name, o), ""),
                           **({"why": why[o]} if o in why else {})} for o in ordinals])


