"""`imagekit base`: make the offline base image (Debian with Python, PyYAML, supervisor) without pulling.

mmdebstrap writes the root filesystem as one tarball, byte for byte reproducible with a fixed
SOURCE_DATE_EPOCH; imagekit then assembles it into an image as it assembles every other layer
(assembly.py) and loads it into the engine. Docker and buildah get the same image ID. An image
made by the same recipe already under the tag is kept.

mmdebstrap runs as root, or as a normal user in its `unshare` mode (it needs `newuidmap` from
Debian's uidmap and a range in /etc/subuid).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from imagekit_core import proc
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import CommandFailed, EnvironmentMissing
from imagekit_core.platforms import Platform, host
from imagekit_core.spec.stepfiles import file_digest

from .assembly import BaseImage, NewLayer, assemble
from .backend import Backend
from .tarball import LayerTar

log = logging.getLogger("imagekit.build")

DEFAULT_BASE = "imagekit/debian-python:bookworm"
DEFAULT_SUITE = "bookworm"
DEFAULT_PACKAGES = ("python3", "python3-yaml", "python3-prometheus-client", "supervisor", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_EPOCH = 1700000000  # SOURCE_DATE_EPOCH of the rootfs when none is set: the same bytes every time
RECIPE_LABEL = "dev.imagekit.base.recipe"


@dataclass(frozen=True)
class BaseRecipe:
    suite: str = DEFAULT_SUITE
    packages: tuple[str, ...] = DEFAULT_PACKAGES
    mirror: str = DEFAULT_MIRROR
    platform: Platform = field(default_factory=host)  # another one's programs run under qemu (binfmt_misc)

    @property
    def text(self) -> str:
        """What the image's recipe label says: a base made by another recipe is made again. (amd64 is not
        named, as before platforms were: the bases made then keep their recipe, and so their image IDs.)"""
        architecture = "" if self.platform.architecture == "amd64" else f" {self.platform.debian}"
        return f"imagekit base: mmdebstrap {self.suite}{architecture} minbase {','.join(self.packages)}"


def existing_recipe(backend: Backend, tag: str) -> str | None:
    info = backend.find(tag)
    return info.labels.get(RECIPE_LABEL) if info is not None else None


def make_rootfs(recipe: BaseRecipe, destination: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise EnvironmentMissing("mmdebstrap not found (fix: apt-get install mmdebstrap uidmap, or use a base from a "
                                 "registry, e.g. --base python:3.11-slim-bookworm)")
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or str(DEFAULT_EPOCH)
    command = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(recipe.packages)}",
               '--aptopt=Acquire::Retries "3"', "--dpkgopt=path-exclude=/usr/share/doc/*",
               "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
               f"--architectures={recipe.platform.debian}", recipe.suite, str(destination), recipe.mirror]
    try:
        proc.run(command, env={**os.environ, "SOURCE_DATE_EPOCH": epoch}, timeout=1800)
    except CommandFailed as exc:
        raise EnvironmentMissing(f"mmdebstrap failed: {exc.output.strip()[-300:]} (fix: check that {recipe.mirror} "
                                 "is reachable; as a normal user mmdebstrap needs uidmap and a range in /etc/subuid; "
                                 "for another platform, Debian's qemu-user-static and arch-test, with qemu registered in "
                                 "binfmt_misc)") from None


def cached_rootfs(recipe: BaseRecipe, work: Path) -> Path:
    """The recipe's root filesystem tarball, made once per recipe and SOURCE_DATE_EPOCH (both backends use it)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or str(DEFAULT_EPOCH)
    key = hashlib.sha256(f"{recipe.text}|{recipe.mirror}|{epoch}|{recipe.platform.machine}".encode()).hexdigest()[:24]
    cached = cache_root() / "base-rootfs" / f"{key}.tar"
    if not cached.is_file():
        log.info("making the root filesystem with mmdebstrap (%s)", recipe.text)
        partial = work / "rootfs.tar"
        make_rootfs(recipe, partial)
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(partial, cached.with_suffix(f".{os.getpid()}.part"))
        os.replace(cached.with_suffix(f".{os.getpid()}.part"), cached)
    return cached


def layer_of(tar: Path) -> LayerTar:
    return LayerTar(path=tar, sha256="sha256:" + file_digest(tar).hex(), size=tar.stat().st_size)


def make_base(backend: Backend, tag: str, recipe: BaseRecipe, *, force: bool = False) -> tuple[str, bool]:
    """The base's image ID under tag, and whether it was made now (else the one there was kept)."""
    backend.check()
    if not force and existing_recipe(backend, tag) == recipe.text:
        info = backend.inspect(tag)
        return info.id, False
    with tempfile.TemporaryDirectory(prefix="imagekit-base.", dir=os.environ.get("TMPDIR", "/var/tmp")) as work:
        rootfs = cached_rootfs(recipe, Path(work))
        scratch = BaseImage(id="", layer_sizes=(), config={
            "architecture": recipe.platform.architecture, "os": recipe.platform.os,
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
                       "Cmd": ["python3"]},
        })
        layer = NewLayer("rootfs", recipe.text, layer_of(rootfs))
        image = assemble(scratch, (layer,), {RECIPE_LABEL: recipe.text}, "1970-01-01T00:00:00Z")
        info = backend.load(image, tag, Path(work), held=0)
    return info.id, True
