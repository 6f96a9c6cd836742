"""The state directory of one emulated StatefulSet, so that separate CLI calls find the same pods.

    <state>/set.json                    the rendered workload `up` used, replicas, params, restarts,
                                        every template revision still run by a pod, and each pod's revision
    <state>/claims/<claim>-<set>-<i>/   PersistentVolumeClaims: kept by `down` (Retain), like the PV
    <state>/node/<hostPath>/            the emulated node's disk (hostPath volumes): lost with the node
    <state>/pods/<pod>/<volume>/        emptyDir volumes on disk: lost with the pod

Containers are named `<pod>.<container>` (`wordfreq-0.pipeline`, `wordfreq-0.sandbox`) and
labelled with this directory, so `down` finds them even without set.json.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagekit_core.errors import UsageError
from imagekit_core.labels import image_label

STATE_FILE = "set.json"
DEFAULT_ROOT = Path(".imagekit-pods")
FORMAT = 1

# Docker labels on every container of a local pod (dev.imagekit.pod…).
LABEL_STATE = image_label("pod.state")     # absolute state directory
LABEL_SET = image_label("pod.set")
LABEL_POD = image_label("pod")             # the pod name
LABEL_ORDINAL = image_label("pod.ordinal")
LABEL_ROLE = image_label("pod.role")       # sandbox | init | container
LABEL_CONTAINER = image_label("pod.container")
LABEL_REVISION = image_label("pod.revision")  # the template revision the container was made from

log = logging.getLogger("imagekit.deploy")


@dataclass
class SetState:
    """What `up` decided; `kill`, `status` and `down` read it back."""

    rendered: str                      # the rendered directory or stream `up` read
    name: str
    namespace: str
    workload: dict[str, Any]           # the StatefulSet as rendered: pods are re-created from it
    ordinals: list[int]
    params: dict[str, str] = field(default_factory=dict)
    network: str | None = None         # `up --network`: the Docker network the pods join (default: the engine's)
    secrets: dict[str, str] = field(default_factory=dict)      # `up --secret`: Secret name -> env file, or "" (host)
    platform: str | None = None        # `up --platform`: the platform the pods run (default: the images' own)
    restarts: dict[str, int] = field(default_factory=dict)     # pod -> restarts made by `kill`
    kills: list[dict[str, Any]] = field(default_factory=list)  # the failures injected, in order
    # The controller's revisions: revision -> the workload that has that pod template (ControllerRevision),
    # which revision each pod runs, and the last update each pod had (rollout.PodUpdate as JSON).
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    pod_revisions: dict[str, str] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    format: int = FORMAT

    def workload_of(self, pod: str) -> dict[str, Any]:
        """The workload whose template made this pod: its revision's, else the current one."""
        revision = self.pod_revisions.get(pod)
        return self.revisions.get(revision, self.workload) if revision else self.workload


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def file(self) -> Path:
        return self.root / STATE_FILE

    @property
    def key(self) -> str:
        return str(self.root.resolve())

    @property
    def scope(self) -> str:
        """A short name of this state directory, in its containers' names."""
        return hashlib.sha256(self.key.encode()).hexdigest()[:8]

    @property
    def claims(self) -> Path:
        return self.root / "claims"

    @property
    def node(self) -> Path:
        return self.root / "node"

    def pod_dir(self, pod: str) -> Path:
        return self.root / "pods" / pod

    def exists(self) -> bool:
        return self.file.is_file()

    def load(self) -> SetState:
        if not self.exists():
            raise UsageError(f"no emulated pods in {self.root} (fix: `imagekit pod up RENDERED_DIR`, "
                             f"or name the state with --state-dir)")
        try:
            data = json.loads(self.file.read_text())
            state = SetState(**data)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{self.file} is unreadable ({exc}) (fix: `imagekit pod down --state-dir "
                             f"{self.root}` and up again)") from None
        if state.format != FORMAT:
            raise UsageError(f"{self.file} has format {state.format}, this imagekit writes {FORMAT} "
                             f"(fix: `imagekit pod down` with the imagekit that made it)")
        return state

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One `imagekit pod` command at a time changes this state directory: a second one waits for the first."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another `imagekit pod` command is changing %s: waiting for it to end", self.root)
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def save(self, state: SetState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.file.with_name(f".{STATE_FILE}.partial")
        partial.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
        os.replace(partial, self.file)

    def labels(self, set_name: str) -> dict[str, str]:
        return {LABEL_STATE: self.key, LABEL_SET: set_name}

    def labels_any(self) -> dict[str, str]:
        """What every container of this state directory carries, whatever its set."""
        return {LABEL_STATE: self.key}


def default_state_dir(set_name: str) -> StateDir:
    return StateDir(DEFAULT_ROOT / set_name)


def find_state_dir(explicit: Path | None, *, left_over: bool = False) -> StateDir:
    """--state-dir, else the only set under ./.imagekit-pods; left_over counts sets already down
    (their claims kept), for `down --delete-data`."""
    if explicit is not None:
        return StateDir(explicit)
    candidates = sorted(p for p in DEFAULT_ROOT.iterdir() if p.is_dir() and (left_over or (p / STATE_FILE).is_file())) \
        if DEFAULT_ROOT.is_dir() else []
    if len(candidates) == 1:
        return StateDir(candidates[0])
    if not candidates:
        raise UsageError(f"no emulated pods under ./{DEFAULT_ROOT} (fix: `imagekit pod up RENDERED_DIR`, "
                         f"or pass --state-dir)")
    names = ", ".join(str(c) for c in candidates)
    raise UsageError(f"several emulated sets here ({names}) (fix: pass --state-dir)")


