"""Backend: the Docker engine, through the Docker SDK for Python.

Images imagekit assembled (runtime base included) go in with `docker load`, as an
archive that leaves out the layers the engine holds; the engine keeps the config as
written, so the image ID is its digest, as on buildah. `build` (Containerfiles) is
for the by-hand runtime base and the benchmark's naive image: the build never uses it.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagekit_core import engine
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, EnvironmentMissing
from imagekit_core.platforms import Platform, host
from imagekit_core.references import parse_reference

from .assembly import AssembledImage, BaseImage, docker_archive
from .backend import Backend, BuildRequest, ImageInfo, PushReport, push_failed
from .events import NO_EVENTS, BuildEvents, Stage

log = logging.getLogger("imagekit.build")

_METADATA_ONLY = re.compile(r"#\(nop\)\s+(?!ADD|COPY)")


class DockerBackend(Backend):
    name = "docker"
    events: BuildEvents = NO_EVENTS

    def __init__(self) -> None:
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self.check()
        return self._client

    def check(self) -> None:
        self._client = engine.connect(timeout=600)

    def image_id(self, ref: str) -> str | None:
        return engine.image_id(self.client, ref)

    def ensure_image(self, ref: str) -> str:
        return engine.ensure_image(self.client, ref, what="base image",
                                   fix="make one with `imagekit base` (no pull), or pass --base with an image a registry serves")

    def run_python(self, image: str, script: str) -> str:
        output: bytes = self.client.containers.run(
            image, entrypoint=["python3", "-c", script], user="0", network_disabled=True,
            remove=True, stdout=True, stderr=False,
        )
        text: str = output.decode(errors="replace")
        return text

    def build(self, request: BuildRequest) -> str:
        # The classic builder has no SOURCE_DATE_EPOCH: request.timestamp only reaches the labels.
        stream = self.client.api.build(
            path=str(request.context), dockerfile=request.containerfile, tag=request.tag,
            buildargs=request.build_args or None, nocache=request.no_cache,
            rm=True, forcerm=True, pull=False, decode=True,
        )
        image_id = ""
        transcript: list[str] = []
        for event in stream:
            if "error" in event:
                transcript.append(event["error"])
                raise CommandFailed(["docker", "build", str(request.context)], 1, "\n".join(transcript))
            if "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
            for line in event.get("stream", "").splitlines():
                if line.strip():
                    transcript.append(line.strip())
                    log.debug("docker: %s", line.strip())
        return image_id or self.client.api.inspect_image(request.tag)["Id"]

    def base_image(self, image: ImageInfo) -> BaseImage:
        """The engine's API shows a config only parsed: its stored form comes from `docker save`
        (the whole image, so once per image ID, then from the imagekit cache)."""
        cached = cache_root() / "base-configs" / f"docker-{image.id.removeprefix('sha256:')}.json"
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            temporary = cached.with_suffix(f".{os.getpid()}.part")
            temporary.write_bytes(self._saved_config(image.id))
            os.replace(temporary, cached)
        config = json.loads(cached.read_bytes())
        return BaseImage(id=image.id, config=config, layer_sizes=tuple(size or 0 for size in image.layer_sizes))

    def _saved_config(self, image_id: str) -> bytes:
        return self._config_on_disk(image_id) or self._config_from_save(image_id)

    def _config_on_disk(self, image_id: str) -> bytes | None:
        """The config as the engine stored it, read from its image store when this process can (root, the
        engine on this machine): any file whose digest is the image ID is that config, so what is read is
        checked, and anything else (another machine's engine, rootless, another layout) falls back to
        `docker save`. Measured reason: `docker save` of the 180 MB example base costs about 1.1 s of the
        engine's time on a cold build (it exports the whole image to a temporary directory before the
        first byte), on 2 cores beside pip; this read costs under 10 ms."""
        try:
            info = self.client.info()
            path = (Path(info["DockerRootDir"]) / "image" / info["Driver"] / "imagedb" / "content" / "sha256" /
                    image_id.removeprefix("sha256:"))
            data = path.read_bytes()
        except (OSError, KeyError, TypeError, ValueError):
            return None
        return data if "sha256:" + hashlib.sha256(data).hexdigest() == image_id else None

    def _config_from_save(self, image_id: str) -> bytes:
        members: dict[str, bytes] = {}
        stream = ChunkReader(self.client.api.get_image(image_id, chunk_size=1 << 20))
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".json"):
                    handle = archive.extractfile(member)
                    members[member.name] = handle.read() if handle else b""
        config_name = json.loads(members["manifest.json"])[0]["Config"]
        return members[config_name]

    def load(self, image: AssembledImage, tag: str, work: Path, held: int) -> ImageInfo:
        try:
            self._load(docker_archive(image, tag, held), tag)
        except CommandFailed as exc:
            if not held:
                raise
            # A layer counted as held went away (an image removed meanwhile): send them all.
            log.info("docker load: %s; loading every layer", exc)
            self._load(docker_archive(image, tag, 0), tag)
        return self.inspect(tag)

    def _load(self, archive: Iterator[bytes], tag: str) -> None:
        from docker.errors import APIError

        try:
            for event in self.client.api.load_image(archive):
                if "error" in event:
                    raise CommandFailed(["docker", "load", tag], 1, str(event["error"]))
        except APIError as exc:
            raise CommandFailed(["docker", "load", tag], 1, str(exc.explanation or exc)) from None

    def find(self, ref: str) -> ImageInfo | None:
        from docker.errors import ImageNotFound

        try:
            return self.inspect(ref)
        except (ImageNotFound, EnvironmentMissing):
            return None

    def inspect(self, ref: str) -> ImageInfo:
        from docker.errors import ImageNotFound

        try:
            data = self.client.api.inspect_image(ref)
        except ImageNotFound:
            raise EnvironmentMissing(f"image {ref} is not in the Docker engine") from None
        config = data.get("Config") or {}
        diff_ids = tuple(data.get("RootFS", {}).get("Layers", []))
        history = list(reversed(self.client.api.history(ref)))
        # The history API gives no empty_layer flag: metadata-only instructions are `#(nop)` other
        # than ADD/COPY. Only trust the sizes when that accounts for exactly one entry per layer.
        layered = [entry for entry in history if not _METADATA_ONLY.search(entry.get("CreatedBy", ""))]
        sizes: tuple[int | None, ...] = tuple(int(entry.get("Size", 0)) for entry in layered)
        if len(sizes) != len(diff_ids):
            sizes = (None,) * len(diff_ids)
        digests = [d.split("@", 1)[1] for d in data.get("RepoDigests") or [] if "@" in d]
        return ImageInfo(
            id=data["Id"],
            diff_ids=diff_ids,
            labels=dict(config.get("Labels") or {}),
            layer_sizes=sizes,
            history=tuple({"created_by": e.get("CreatedBy", ""), "created": e.get("Created"),
                           "comment": e.get("Comment", "")} for e in history),
            user=config.get("User") or "",
            entrypoint=tuple(config.get("Entrypoint") or ()),
            env=tuple(config.get("Env") or ()),
            created=data.get("Created", ""),
            manifest_digest=digests[0] if digests else None,
        )

    def read_file(self, ref: str, path: str) -> bytes | None:
        from docker.errors import NotFound

        container = self.client.containers.create(ref, entrypoint=["true"], network_disabled=True)
        try:
            chunks, _ = container.get_archive(path)
            with tarfile.open(fileobj=ChunkReader(iter(chunks)), mode="r|") as archive:
                for member in archive:
                    handle = archive.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        return handle.read()
            return None
        except NotFound:
            return None
        finally:
            container.remove(force=True)

    def tag(self, image: str, ref: str) -> None:
        repository, tag = _split_tag(ref)
        self.client.api.tag(image, repository, tag)

    def name_platforms(self, ref: str, images: dict[Platform, str]) -> str:
        chosen = host() if host() in images else next(iter(images))
        self.tag(images[chosen], ref)
        return f"the {chosen} image"

    def listed_platforms(self, ref: str) -> tuple[Platform, ...]:
        return ()  # an engine that holds one image per name (docker manifest lists live in registries only)

    def remove(self, refs: list[str]) -> None:
        from docker.errors import APIError, ImageNotFound

        for ref in refs:
            with contextlib.suppress(ImageNotFound, APIError):
                self.client.api.remove_image(ref, force=True)

    def untagged(self) -> set[str]:
        return {image["Id"] for image in self.client.api.images(filters={"dangling": True})}

    def push(self, ref: str, destination: str, *, insecure: bool, authfile: Path | None) -> PushReport:
        # Credentials: the SDK reads the standard config.json ($DOCKER_CONFIG or ~/.docker) itself.
        info = self.inspect(ref)
        if destination != ref:
            self.tag(ref, destination)
        repository, tag = _split_tag(destination)
        status: dict[str, str] = {}
        digest = ""
        errors: list[str] = []
        try:
            for event in self.client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    errors.append(event["error"])
                elif "aux" in event and "Digest" in event["aux"]:
                    digest = event["aux"]["Digest"]
                elif event.get("id") and event.get("status"):
                    status[event["id"]] = event["status"]
                    self._report_push(event)
        except Exception as exc:  # the SDK raises requests/docker errors for a refused connection
            errors.append(str(exc))
        if errors or not digest:
            raise push_failed(destination, "; ".join(errors))
        # The engine names each layer by the first 12 hex digits of its diff ID.
        uploaded: list[bool | None] = []
        for diff_id in info.diff_ids:
            final = status.get(diff_id.removeprefix("sha256:")[:12])
            if final is None:
                uploaded.append(None)
            else:
                uploaded.append(final == "Pushed")
        return PushReport(digest=digest, uploaded=tuple(uploaded))


    def _report_push(self, event: dict[str, Any]) -> None:
        """Docker's push events, per layer (its short ID): bytes sent while pushing, then the final state."""
        detail = event.get("progressDetail") or {}
        if event["status"] == "Pushing" and "current" in detail:
            self.events.transfer(event["id"], int(detail["current"]), detail.get("total"))
        elif event["status"] in ("Pushed", "Layer already exists") or event["status"].startswith("Mounted from"):
            self.events.stage(event["id"], Stage.PUSHED)


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (the SDK streams `docker save` that way)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _split_tag(ref: str) -> tuple[str, str]:
    """repository and tag of `host:port/name:tag` (tag defaults to latest), as the engine's API takes them."""
    reference = parse_reference(ref, "REF", digest=False)
    return reference.name, reference.tag or "latest"
