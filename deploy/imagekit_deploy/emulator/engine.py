"""The container engine, through the Docker SDK: the only module of the deploy path that uses it
(connecting and fetching images as the build does, through imagekit.engine).

Kept to the few operations a kubelet needs: make sure an image is there, create,
start, kill and remove labelled containers, run a command in one, read its state.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from imagekit_core import engine
from imagekit_core.errors import CommandFailed, EnvironmentMissing, UsageError
from imagekit_core.references import parse_reference


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str                 # created | running | restarting | exited | paused | dead | missing
    exit_code: int | None
    restart_count: int
    started_at: str
    oom_killed: bool
    labels: dict[str, str]

    @property
    def running(self) -> bool:
        return self.status == "running"


MISSING = ContainerState("", "missing", None, 0, "", False, {})


class Engine:
    def __init__(self) -> None:
        self.client = engine.connect(timeout=120)

    # ---------------------------------------------------------------- images
    def ensure_image(self, ref: str, platform: str | None = None) -> None:
        """As imagePullPolicy IfNotPresent: the local image, else a pull (of that platform's, when given)."""
        if platform is not None and engine.image_id(self.client, ref) is None:
            self.pull(ref, platform)
            return
        engine.ensure_image(self.client, ref, fix=f"`imagekit build PIPELINE --tag {ref} --backend docker`, "
                                                  "or render with --image of an image the engine has")

    def platform_of(self, ref: str) -> str | None:
        """`os/architecture` of the engine's image ref (`linux/arm64`); None when the engine does not hold it."""
        from docker.errors import ImageNotFound

        try:
            attrs = self.client.api.inspect_image(ref)
        except ImageNotFound:
            return None
        return f"{attrs.get('Os') or 'linux'}/{attrs.get('Architecture') or 'unknown'}"

    def pull(self, ref: str, platform: str) -> None:
        """`docker pull --platform PLATFORM REF` (by digest, the tags the engine holds stay as they are)."""
        from docker.errors import APIError

        try:
            self.client.images.pull(ref, platform=platform)
        except APIError as exc:
            raise EnvironmentMissing(f"image {ref} ({platform}) can't be pulled ({exc.explanation or exc}) "
                                     "(fix: check that the registry is up and holds it)") from None

    # -------------------------------------------------------------- networks
    def check_network(self, name: str) -> None:
        """`pod up --network NAME`: the network must exist (pods join it; the emulator never makes one)."""
        from docker.errors import NotFound

        try:
            self.client.networks.get(name)
        except NotFound:
            raise UsageError(f"--network {name}: no such Docker network (fix: `docker network create {name}`, "
                             "or name one `docker network ls` lists)") from None

    # ------------------------------------------------------------ containers
    def get(self, name: str) -> Any | None:
        from docker.errors import NotFound

        try:
            return self.client.containers.get(name)
        except NotFound:
            return None

    def find(self, labels: dict[str, str]) -> list[Any]:
        selectors = [f"{key}={value}" for key, value in labels.items()]
        found: list[Any] = self.client.containers.list(all=True, filters={"label": selectors})
        return found

    def state(self, name: str) -> ContainerState:
        container = self.get(name)
        if container is None:
            return MISSING
        attrs = container.attrs
        state = attrs.get("State") or {}
        status = state.get("Status", "unknown")
        exit_code = state.get("ExitCode") if status in ("exited", "dead", "restarting") else None
        return ContainerState(name=name, status=status, exit_code=exit_code,
                              restart_count=int(attrs.get("RestartCount") or 0), started_at=state.get("StartedAt", ""),
                              oom_killed=bool(state.get("OOMKilled")), labels=dict(attrs["Config"].get("Labels") or {}))

    def image_of(self, name: str) -> tuple[str, str, str | None]:
        """A container's image: the reference it was made from, the image id, and the registry digest
        (`repo@sha256:…`) of that image when it came from or went to a registry, else None."""
        from docker.errors import NotFound

        container = self.get(name)
        if container is None:
            return "", "", None
        ref = str(container.attrs["Config"].get("Image") or "")
        image_id = str(container.attrs.get("Image") or "")
        try:
            digests = list(self.client.images.get(image_id).attrs.get("RepoDigests") or [])
        except NotFound:
            digests = []
        repository = parse_reference(ref, "image").name if ref else ""
        same = [d for d in digests if d.split("@")[0] == repository]
        return ref, image_id, (same or digests or [None])[0]

    def create(self, image: str, name: str, binds: Sequence[tuple[str, str, bool]] = (), **options: Any) -> Any:
        """binds: (host path, container path, read only)."""
        from docker.errors import APIError
        from docker.types import Mount

        mounts = [Mount(target=target, source=source, type="bind", read_only=read_only)
                  for source, target, read_only in binds]
        try:
            return self.client.containers.create(image, name=name, detach=True, mounts=mounts, **options)
        except APIError as exc:
            if exc.status_code == 409:
                raise CommandFailed(["docker", "create", "--name", name], 1,
                                    f"a container named {name} already exists and is not one of this set's "
                                    f"(fix: remove it, or render with another --name)") from None
            raise CommandFailed(["docker", "create", "--name", name], 1, str(exc.explanation or exc)) from None

    def start(self, container: Any) -> None:
        from docker.errors import APIError

        try:
            container.start()
        except APIError as exc:
            raise CommandFailed(["docker", "start", container.name], 1, str(exc.explanation or exc)) from None

    def wait(self, container: Any, timeout: float) -> int:
        from requests.exceptions import ConnectionError as RequestsConnectionError
        from requests.exceptions import ReadTimeout

        try:
            return int(container.wait(timeout=timeout)["StatusCode"])
        except (ReadTimeout, RequestsConnectionError):
            raise CommandFailed(["docker", "wait", container.name], 1, f"still running after {timeout:.0f}s") from None

    def logs(self, container: Any, tail: int = 20) -> str:
        text: str = container.logs(stdout=True, stderr=True, tail=tail).decode(errors="replace")
        return text

    def kill(self, container: Any) -> None:
        """SIGKILL and wait until the engine has seen it exit. A manual kill is never restarted by the
        engine's restart policy, so the caller decides what comes next."""
        from docker.errors import APIError

        with contextlib.suppress(APIError):  # not running
            container.kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            container.reload()
            if container.status not in ("running", "restarting"):
                return
            time.sleep(0.05)

    def stop(self, container: Any, grace_seconds: int) -> None:
        from docker.errors import APIError

        with contextlib.suppress(APIError):
            container.stop(timeout=grace_seconds)

    def remove(self, container: Any) -> None:
        from docker.errors import APIError, NotFound

        try:
            container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise

    def exec(self, container: Any, command: list[str], user: str = "") -> tuple[int, str]:
        from docker.errors import APIError

        try:
            result = container.exec_run(command, user=user, demux=False)
        except APIError as exc:
            return 126, str(exc.explanation or exc)
        return int(result.exit_code), (result.output or b"").decode(errors="replace")

    def run_once(self, image: str, command: list[str], binds: dict[str, str], labels: dict[str, str]) -> tuple[int, str]:
        """A short-lived root helper (chown or remove host directories the current user can't)."""
        container = self.client.containers.create(
            image, entrypoint=command[:1], command=command[1:], user="0", network_disabled=True, labels=labels,
            volumes={source: {"bind": target, "mode": "rw"} for source, target in binds.items()},
        )
        try:
            container.start()
            code = self.wait(container, 120)
            return code, self.logs(container)
        finally:
            self.remove(container)
