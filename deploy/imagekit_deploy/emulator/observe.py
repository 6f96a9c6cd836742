"""Looking into an emulated pod: its logs (`imagekit pod logs`) and where its metrics port is published.

Without --step: the pipeline container's output (the runtime's lines and the steps' echoed ones), as
`kubectl logs` shows it. With --step: that step's own log, read from the copy the runtime keeps beside
the SSD checkpoints (on this machine's node directory or claim, so it outlives the pod), or, for a
pipeline without an SSD, from the run directory in the pod's shm through the sandbox.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imagekit_core import contract
from imagekit_core.errors import UsageError

from .blueprint import PodBlueprint
from .pods import SANDBOX, PodSet
from .state import SetState
from .status import Phase, pod_status

FOLLOW_INTERVAL = 0.25
_READ_FROM = ("import sys; f = open(sys.argv[1], 'rb'); f.seek(int(sys.argv[2])); "
              "sys.stdout.write(f.read().decode(errors='replace'))")


def find_pod(pods: PodSet, state: SetState, name: str) -> PodBlueprint:
    """A pod of the set by its name (`wordfreq-1`) or its ordinal (`1`)."""
    for ordinal in state.ordinals:
        pod = pods.blueprint(state, ordinal)
        if name in (pod.name, str(ordinal)):
            return pod
    names = ", ".join(pods.blueprint(state, ordinal).name for ordinal in state.ordinals)
    raise UsageError(f"no pod {name!r} in {state.name} (fix: one of {names or 'none: run `imagekit pod up`'})")



@dataclass
class StepLogSource:
    """Reads a step's log from an offset: the host copy on the SSD, else the pod's shm through the sandbox."""

    pods: PodSet
    pod: PodBlueprint
    step: str

    def host_copy(self) -> Path | None:
        ssd = self.pod.container.env.get(contract.SSD_DIR)
        home = self.pods.volumes.host_path(self.pod, ssd) if ssd else None
        if home is None:
            return None
        return home / self.pod.pipeline / contract.shard_dir_name(self.pod.shard_index) / contract.LOGS_DIR / \
            f"{self.step}.log"

    def read(self, offset: int) -> str | None:
        """Text from `offset` on; None when the log is nowhere to be read."""
        copy = self.host_copy()
        if copy is not None:
            try:
                with open(copy, "rb") as log_file:
                    log_file.seek(offset)
                    return log_file.read().decode(errors="replace")
            except OSError:
                pass  # no copy yet, or not ours to read: the pod's shm
        sandbox = self.pods.engine.get(self.pods.container_name(self.pod.name, SANDBOX))
        if sandbox is None or sandbox.status != "running":
            return None
        path = f"{self.pod.run_dir()}/{contract.LOGS_DIR}/{self.step}.log"
        code, text = self.pods.engine.exec(sandbox, ["python3", "-c", _READ_FROM, path, str(offset)])
        return text if code == 0 else None


def step_log(source: StepLogSource, follow: bool, running: Callable[[], bool]) -> Iterator[str]:
    """The step's log, then (with follow) what it adds, until the pod no longer runs its pipeline."""
    text = source.read(0)
    if text is None and not follow:
        raise UsageError(f"no log of step {source.step!r} in pod {source.pod.name} yet "
                         "(fix: check the step name in `imagekit pod status`, or add -f to wait for it)")
    offset = len((text or "").encode())
    if text:
        yield text
    while follow:
        time.sleep(FOLLOW_INTERVAL)
        more = source.read(offset)
        if more:
            offset += len(more.encode())
            yield more
        elif not running():
            return


def container_log(pods: PodSet, pod: PodBlueprint, follow: bool) -> Iterator[str]:
    """The pipeline container's output, as `kubectl logs` (`-f`: until the container stops)."""
    container = pods.engine.get(pods.container_name(pod.name, pod.container.name))
    if container is None:
        raise UsageError(f"pod {pod.name} has no pipeline container (fix: `imagekit pod up`, or read a step's "
                         "post-mortem with --step)")
    if not follow:
        yield container.logs(stdout=True, stderr=True).decode(errors="replace")
        return
    for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
        yield chunk.decode(errors="replace")


def pod_logs(pods: PodSet, state: SetState, name: str, step: str | None, follow: bool) -> Iterator[str]:
    pod = find_pod(pods, state, name)
    if step is None:
        return container_log(pods, pod, follow)

    def running() -> bool:  # a complete shard holds its container up, with nothing more to log
        return pod_status(pods, state, pod.ordinal).phase in (Phase.PENDING, Phase.RUNNING, Phase.RESTARTING)

    return step_log(StepLogSource(pods, pod, step), follow, running)
