"""Backend: buildah, through its CLI, always via the sh wrapper buildah.sh beside this file.

buildah gives what the Docker engine's classic builder can't: `--timestamp`
(SOURCE_DATE_EPOCH) fixes every time in the image, so two clean builds of the
same sources have one digest.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

from imagekit_runtime import proc
from imagekit_runtime.errors import CommandFailed, EnvironmentMissing

from .backend import (ENGINE_HINT, Backend, BuildOutcome, BuildRequest, ImageInfo, PushReport, parse_build_log,
                      registry_unreachable)

log = logging.getLogger("imagekit.build")

WRAPPER = Path(__file__).with_name("buildah.sh")
_STEP = re.compile(r"^STEP (\d+)/(\d+): ")
_FULL_ID = re.compile(r"^[0-9a-f]{64}$")


class BuildahBackend(Backend):
    name = "buildah"

    def __init__(self) -> None:
        self._checked = False

    def _run(self, *args: str | Path, timeout: float | None = None) -> str:
        result = proc.run(["sh", WRAPPER, *args], timeout=timeout)
        return (result.stdout or b"").decode(errors="replace")

    def check(self) -> None:
        if self._checked:
            return
        if shutil.which("buildah") is None:
            raise EnvironmentMissing(f"buildah not found on PATH: {ENGINE_HINT}")
        try:
            self._run("check", timeout=60)
        except CommandFailed as exc:
            raise EnvironmentMissing(f"buildah can't be used: {exc}; {ENGINE_HINT}") from None
        self._checked = True

    def image_id(self, ref: str) -> str | None:
        try:
            return "sha256:" + self._run("image-id", ref).strip().removeprefix("sha256:")
        except CommandFailed:
            return None

    def ensure_image(self, ref: str) -> str:
        image = self.image_id(ref)
        if image:
            return image
        log.info("buildah: %s not in storage, pulling", ref)
        try:
            self._run("pull", ref)
        except CommandFailed as exc:
            raise EnvironmentMissing(
                f"base image {ref} is neither in buildah's storage nor in the local Docker engine, and can't be "
                f"pulled ({exc}); scripts/bootstrap.sh builds imagekit/debian-python:bookworm (use --base)") from None
        image = self.image_id(ref) or self.image_id(f"docker.io/{ref}")
        if not image:
            raise EnvironmentMissing(f"base image {ref} could not be found after pulling it")
        if not self.image_id(ref):
            self.tag(image, ref)
        return image

    def run_python(self, image: str, script: str) -> str:
        return self._run("probe", image, script)

    def build(self, request: BuildRequest) -> BuildOutcome:
        options: list[str] = []
        if request.timestamp is not None:
            options += ["--timestamp", str(request.timestamp)]
        if request.no_cache:
            options.append("--no-cache")
        if not request.cache_steps:
            options.append("--layers=false")
        for name, value in sorted(request.build_args.items()):
            options += ["--build-arg", f"{name}={value}"]
        for name, value in sorted(request.labels.items()):
            options += ["--label", f"{name}={value}"]
        output = self._run("build", request.context, request.containerfile, request.tag, *options)
        lines = output.splitlines()
        for line in lines:
            log.debug("buildah: %s", line)
        # buildah's last line is the full ID of the image it tagged.
        image_id = next((line.strip() for line in reversed(lines) if _FULL_ID.match(line.strip())), "")
        if not image_id:
            image_id = self.image_id(request.tag) or ""
        if not image_id.startswith("sha256:"):
            image_id = "sha256:" + image_id
        cached, step_images = parse_build_log(lines, _STEP)
        return BuildOutcome(image_id=image_id, cached=cached, step_images=step_images)

    def find(self, ref: str) -> ImageInfo | None:
        try:
            return self.inspect(ref)
        except CommandFailed:
            return None

    def inspect(self, ref: str) -> ImageInfo:
        data = json.loads(self._run("inspect", ref))
        oci = data.get("OCIv1") or {}
        config = oci.get("config") or {}
        manifest = json.loads(data.get("Manifest") or "{}")
        diff_ids = tuple(oci.get("rootfs", {}).get("diff_ids", []))
        sizes = tuple(layer.get("size") for layer in manifest.get("layers", []))
        if len(sizes) != len(diff_ids):
            sizes = (None,) * len(diff_ids)
        return ImageInfo(
            id="sha256:" + data["FromImageID"].removeprefix("sha256:"),
            diff_ids=diff_ids,
            labels=dict(config.get("Labels") or {}),
            layer_sizes=sizes,
            history=tuple(oci.get("history") or ()),
            user=config.get("User", ""),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            env=tuple(config.get("Env") or ()),
            created=oci.get("created", ""),
            manifest_digest=data.get("FromImageDigest") or None,
        )

    def tag(self, image: str, ref: str) -> None:
        self._run("tag", image, ref)

    def remove(self, refs: list[str]) -> None:
        if refs:
            self._run("rmi", *refs)

    def push(self, ref: str, destination: str, *, insecure: bool, authfile: Path | None) -> PushReport:
        layer_count = len(self.inspect(ref).diff_ids)
        with tempfile.TemporaryDirectory() as work:
            digest_file = Path(work) / "digest"
            args: list[str | Path] = ["push", ref, destination, digest_file, "false" if insecure else "true"]
            if authfile is not None:
                args.append(authfile)
            try:
                self._run(*args)
            except CommandFailed as exc:
                if registry_unreachable(exc.output):
                    raise EnvironmentMissing(f"registry of {destination} unreachable: {exc}") from None
                raise
            digest = digest_file.read_text().strip()
        # buildah 1.28 prints no "already exists" per blob: the publisher finds out from the registry.
        return PushReport(digest=digest, uploaded=(None,) * layer_count)
