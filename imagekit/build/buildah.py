"""Backend: buildah, through its CLI, always via the sh wrapper buildah.sh beside this file.

Assembled images are loaded as an OCI layout with skopeo, which writes into the same
containers-storage as buildah and keeps the config as written (the image ID is its
digest, as on Docker). `build` (Containerfiles, `--timestamp` for SOURCE_DATE_EPOCH) is
for the by-hand runtime base and the benchmark's naive image: the build never uses it.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from imagekit_core import proc
from imagekit_core.engine import BUILDAH_HINT
from imagekit_core.errors import CommandFailed, EnvironmentMissing, UsageError
from imagekit_core.platforms import Platform, platform_digests
from imagekit_core.references import is_registry_host

from .assembly import AssembledImage, BaseImage, write_oci_layout
from .backend import Backend, BuildRequest, ImageInfo, PushReport, assembled_info, push_failed
from .events import NO_EVENTS, BuildEvents

log = logging.getLogger("imagekit.build")

WRAPPER = Path(__file__).with_name("buildah.sh")
_FULL_ID = re.compile(r"^[0-9a-f]{64}$")


def local_name(ref: str) -> str:
    """The name buildah gives an image it builds: a reference without a registry host gets
    `localhost/` (skopeo would file it under docker.io/library/ instead)."""
    first, slash, _ = ref.partition("/")
    if slash and is_registry_host(first):
        return ref
    return f"localhost/{ref}"


class BuildahBackend(Backend):
    name = "buildah"
    events: BuildEvents = NO_EVENTS

    def __init__(self) -> None:
        self._checked = False
        # `buildah inspect` output by reference and by image ID, for this backend's life: every
        # buildah call costs tens of milliseconds. Anything that adds, tags or removes images empties it.
        self._inspected: dict[str, dict[str, Any]] = {}

    def _run(self, *args: str | Path, timeout: float | None = None) -> str:
        result = proc.run(["sh", WRAPPER, *args], timeout=timeout)
        return (result.stdout or b"").decode(errors="replace")

    def _changing(self, *args: str | Path, timeout: float | None = None) -> str:
        self._inspected.clear()
        return self._run(*args, timeout=timeout)

    def check(self) -> None:
        if self._checked:
            return
        for tool in ("buildah", "skopeo"):  # skopeo loads assembled images into buildah's storage
            if shutil.which(tool) is None:
                raise EnvironmentMissing(f"{tool} not found on PATH (fix: {BUILDAH_HINT})")
        # Whether its storage can be used shows at the first lookup (_inspect_json).
        self._checked = True

    def _inspect_json(self, ref: str) -> dict[str, Any] | None:
        """buildah's view of an image, or None when storage doesn't hold ref."""
        if ref in self._inspected:
            return self._inspected[ref]
        self.check()
        try:
            data: dict[str, Any] = json.loads(self._run("inspect", ref))
        except CommandFailed as exc:
            if "image not known" in exc.output or "not found" in exc.output:
                return None
            if "invalid reference format" in exc.output:
                raise UsageError(f"{ref!r} is not an image reference (name[:tag] or name@sha256:…)") from None
            raise EnvironmentMissing(f"buildah can't read its storage: {exc} (fix: check that `buildah images` works "
                                     "for you; rootless buildah needs uidmap and a range in /etc/subuid)") from None
        self._inspected[ref] = self._inspected["sha256:" + data["FromImageID"].removeprefix("sha256:")] = data
        return data

    def image_id(self, ref: str) -> str | None:
        data = self._inspect_json(ref)
        return None if data is None else "sha256:" + data["FromImageID"].removeprefix("sha256:")

    def ensure_image(self, ref: str) -> str:
        image = self.image_id(ref)
        if image:
            return image
        log.info("buildah: %s not in storage, pulling", ref)
        try:
            self._changing("pull", ref)
        except CommandFailed as exc:
            raise EnvironmentMissing(
                f"base image {ref} is neither in buildah's storage nor in the local Docker engine, and can't be "
                f"pulled ({exc}); make one with `imagekit base --backend buildah`, or pass --base with an image "
                f"a registry serves") from None
        image = self.image_id(ref) or self.image_id(f"docker.io/{ref}")
        if not image:
            raise EnvironmentMissing(f"base image {ref} could not be found after pulling it")
        if not self.image_id(ref):
            self.tag(image, ref)
        return image

    def run_python(self, image: str, script: str) -> str:
        return self._run("probe", image, script)

    def build(self, request: BuildRequest) -> str:
        options: list[str] = []
        if request.timestamp is not None:
            options += ["--timestamp", str(request.timestamp)]
        if request.no_cache:
            options.append("--no-cache")
        for name, value in sorted(request.build_args.items()):
            options += ["--build-arg", f"{name}={value}"]
        output = self._changing("build", request.context, request.containerfile, request.tag, *options)
        lines = output.splitlines()
        for line in lines:
            log.debug("buildah: %s", line)
        # buildah's last line is the full ID of the image it tagged.
        image_id = next((line.strip() for line in reversed(lines) if _FULL_ID.match(line.strip())), "")
        if not image_id:
            image_id = self.image_id(request.tag) or ""
        return image_id if image_id.startswith("sha256:") else "sha256:" + image_id

    def base_image(self, image: ImageInfo) -> BaseImage:
        ref = image.id
        data = self._inspect_json(ref)
        if data is None:
            raise EnvironmentMissing(f"image {ref} is not in buildah's storage")
        config = data["OCIv1"]
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layers = json.loads(data.get("Manifest") or "{}").get("layers", [])
        # buildah commits layers uncompressed: each manifest entry is the diff ID and its size.
        if [layer.get("digest") for layer in layers] != diff_ids:
            raise EnvironmentMissing(f"{ref}: its stored manifest doesn't list its layers uncompressed; "
                                     f"rebuild it with buildah (imagekit builds the runtime base itself)")
        return BaseImage(id="sha256:" + data["FromImageID"].removeprefix("sha256:"), config=config,
                         layer_sizes=tuple(int(layer["size"]) for layer in layers))

    def load(self, image: AssembledImage, tag: str, work: Path, held: int) -> ImageInfo:
        # containers-storage looks every blob up by digest first: the base's layers and the held
        # ones are never read (the layout leaves the base's out), new ones are applied. skopeo checks
        # every blob's digest and stores config and manifest as written, so the image is the one
        # assembled: its ID is the config's digest (no `buildah inspect` needed, ~0.1 s).
        layout = write_oci_layout(image, work / "oci-layout")
        self._run("load", layout, local_name(tag))
        for name in (tag, local_name(tag)):  # only the tag moved: what is known by image ID still holds
            self._inspected.pop(name, None)
        return assembled_info(image)

    def find(self, ref: str) -> ImageInfo | None:
        return None if self._inspect_json(ref) is None else self.inspect(ref)

    def inspect(self, ref: str) -> ImageInfo:
        data = self._inspect_json(ref)
        if data is None:
            raise EnvironmentMissing(f"image {ref} is not in buildah's storage")
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

    def read_file(self, ref: str, path: str) -> bytes | None:
        self.check()
        result = proc.run(["sh", WRAPPER, "read", ref, path], check=False)
        if result.returncode == 3:  # no such file in the image
            return None
        if result.returncode != 0:
            raise CommandFailed(["buildah", "read", ref, path], result.returncode,
                                (result.stderr or b"").decode(errors="replace"))
        return result.stdout or b""

    def tag(self, image: str, ref: str) -> None:
        self._changing("tag", image, ref)

    def name_platforms(self, ref: str, images: dict[Platform, str]) -> str:
        self._changing("manifest", local_name(ref), *(local_name(image) for image in images.values()))
        return f"a manifest list of {', '.join(str(platform) for platform in images)}"

    def listed_platforms(self, ref: str) -> tuple[Platform, ...]:
        try:
            listed = json.loads(self._run("listed", local_name(ref)))
        except CommandFailed:
            return ()
        return tuple(platform_digests(listed))

    def remove(self, refs: list[str]) -> None:
        if refs:
            self._changing("rmi", *refs)

    def untagged(self) -> set[str]:
        self.check()
        named: dict[str, bool] = {}
        for line in self._run("images").splitlines():
            image, _, name = line.strip().partition(" ")
            if image:
                image = "sha256:" + image.removeprefix("sha256:")
                named[image] = named.get(image, False) or name.strip() not in ("", "<none>")
        return {image for image, has_name in named.items() if not has_name}

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
                raise push_failed(destination, exc.output or str(exc)) from None
            digest = digest_file.read_text().strip()
        # buildah 1.28 prints no "already exists" per blob: the publisher finds out from the registry.
        return PushReport(digest=digest, uploaded=(None,) * layer_count)
