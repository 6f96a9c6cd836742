"""Failure injection at the four failure levels of docs/contract.md, on one emulated pod.

    process    kill -9 of one step process, inside the pipeline container (found through the
               runtime's supervisord); the runtime fails the run, the restart policy restarts
               the container, and it resumes from shm
    container  the pipeline container killed and started again; the sandbox and its shm stay
    pod        sandbox and containers removed, the pod created again: shm is gone, the SSD stays
    node       as pod, and the node's disk for this pod goes too (hostPath volumes and the
               SSD volume): only the PersistentVolume claims stay
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imagekit_core import contract
from imagekit_core.errors import UsageError

from .blueprint import PodBlueprint, VolumeKind
from .pods import PodSet
from .state import SetState

LEVELS = contract.FAILURE_LEVELS

# Run in the pipeline container as its user: find a RUNNING step in supervisord, kill -9 it if asked.
STEP_PROCESS_SCRIPT = r"""
import glob, os, signal, subprocess, sys
pattern, step, action = sys.argv[1], sys.argv[2], sys.argv[3]
confs = sorted(glob.glob(pattern))
if not confs:
    sys.exit(3)
out = subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", confs[0], "status"],
                     capture_output=True, text=True).stdout
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid" and (not step or parts[0] == step):
        pid = int(parts[3].rstrip(","))
        if action == "kill":
            os.kill(pid, signal.SIGKILL)
        print(parts[0], pid)
        sys.exit(0)
sys.exit(4)
"""


@dataclass
class KillReport:
    pod: str
    ordinal: int
    level: str
    step: str | None
    pid: int | None
    at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def supervisord_conf_pattern(pod: PodBlueprint) -> str:
    pipeline = pod.pipeline or "*"
    return (f"{pod.shm_dir()}/{pipeline}/{contract.shard_dir_name(pod.shard_index or '*')}/{contract.RUN_DIR_NAME}/"
            f"{contract.SUPERVISOR_CONF}")


def _step_process(pods: PodSet, pod: PodBlueprint, step: str | None, action: str) -> tuple[str, int] | None:
    container = pods.engine.get(pods.container_name(pod.name, pod.container.name))
    if container is None or container.status != "running":
        return None
    code, output = pods.engine.exec(container, ["python3", "-c", STEP_PROCESS_SCRIPT, supervisord_conf_pattern(pod), step or "",
                                                action])
    if code != 0 or not output.strip():
        return None
    name, pid = output.split()[:2]
    return name, int(pid)


def wait_for_step(pods: PodSet, pod: PodBlueprint, step: str, timeout: float, action: str = "probe") -> tuple[str, int]:
    """Wait until step runs; with action "kill", kill it in the same look (no window for it to end)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _step_process(pods, pod, step, action)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise UsageError(f"step {step} did not run in pod {pod.name} within {timeout:.0f}s "
                             f"(fix: name a step that still has to run, see `imagekit pod status`)")
        time.sleep(0.1)


def _node_disk(pods: PodSet, pod: PodBlueprint) -> list[Any]:
    """What a lost node takes with it: this pod's hostPath directories and its SSD volume."""
    ssd = pod.checkpoint_mount(contract.SSD_DIR)
    lost = []
    for mount in pod.container.mounts:
        volume = pod.volumes[mount.volume]
        if volume.kind == VolumeKind.HOST_PATH or (ssd is not None and mount == ssd):
            source = pods.volumes.source(pod, mount)
            if source is not None:
                lost.append(source)
    return lost


def kill(pods: PodSet, state: SetState, ordinal: int, level: str, step: str | None = None,
         timeout: float = 60.0) -> KillReport:
    if level not in LEVELS:
        raise UsageError(f"--level {level!r} is not one of {', '.join(LEVELS)}")
    if ordinal not in state.ordinals:
        raise UsageError(f"ordinal {ordinal} is not a pod of {state.name} "
                         f"(pods: {', '.join(map(str, state.ordinals)) or 'none'})")
    pod = pods.blueprint(state, ordinal)
    engine = pods.engine
    if not pods.pod_is_whole(pod):
        raise UsageError(f"pod {pod.name} is not up (fix: `imagekit pod up` again, or see `imagekit pod status`)")
    if step is not None and level != contract.FailureLevel.PROCESS:
        wait_for_step(pods, pod, step, timeout)
    pid = None
    if level == contract.FailureLevel.PROCESS:
        found = (wait_for_step(pods, pod, step, timeout, "kill") if step is not None
                 else _step_process(pods, pod, None, "kill"))
        if found is None:
            raise UsageError(f"no step process is running in pod {pod.name} now (fix: kill while a step runs, "
                             f"name one with --step, or use --level container)")
        step, pid = found
    elif level == contract.FailureLevel.CONTAINER:
        name = pods.container_name(pod.name, pod.container.name)
        # A manual start resets the engine's restart count: keep what it had counted so far.
        counted = engine.state(name).restart_count
        container = engine.get(name)
        engine.kill(container)
        if pod.restart_policy in ("Always", "OnFailure"):  # killed means exit 137: both restart
            engine.start(container)
            state.restarts[pod.name] = state.restarts.get(pod.name, 0) + counted + 1
    else:
        pods.remove_pod(pod)
        state.restarts.pop(pod.name, None)  # a new pod counts from 0
        if level == contract.FailureLevel.NODE:
            for path in _node_disk(pods, pod):
                pods.volumes.remove(pod, path)
        pods.create_pod(state, pod)
    report = KillReport(pod=pod.name, ordinal=ordinal, level=level, step=step, pid=pid,
                        at=datetime.now(UTC).isoformat(timespec="milliseconds"))
    state.kills.append(report.to_json())
    pods.state_dir.save(state)
    return report
