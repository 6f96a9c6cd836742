"""`imagekit base`: make the offline base image a pipeline builds on (no registry, no pull)."""
from __future__ import annotations

import os

import typer

from imagekit.build.debianbase import DEFAULT_BASE, DEFAULT_MIRROR, DEFAULT_PACKAGES, DEFAULT_SUITE, BaseRecipe, make_base
from imagekit.build.engines import BACKENDS, get_backend
from imagekit_core import contract
from imagekit_core.platforms import host, parse_platform
from imagekit_core.references import parse_reference

from .common import emit_text, stderr

PACKAGE_HELP = f"a Debian package to add, repeatable [always: {', '.join(DEFAULT_PACKAGES)}]"


def register(app: typer.Typer) -> None:
    @app.command()
    def base(
        tag: str = typer.Option(DEFAULT_BASE, "--tag", "-t", help="the image's reference"),
        backend: str = typer.Option(os.environ.get(contract.BACKEND, "docker"), "--backend", "-b",
                                    help=f"image engine to load it into: {' or '.join(BACKENDS)} (${contract.BACKEND})"),
        suite: str = typer.Option(DEFAULT_SUITE, "--suite", help="the Debian release"),
        mirror: str = typer.Option(DEFAULT_MIRROR, "--mirror", help="the Debian mirror mmdebstrap reads"),
        package: list[str] = typer.Option([], "--package", show_default=False,
                                          help=PACKAGE_HELP),
        force: bool = typer.Option(False, "--force", help="make it again even when the tag holds one of this recipe"),
        platform: str = typer.Option(str(host()), "--platform",
                                     help="linux/amd64 or linux/arm64; another than this machine's runs its "
                                          "programs under qemu-user-static, registered with binfmt_misc"),
    ) -> None:
        """Make a Debian base image with Python, PyYAML and supervisor (mmdebstrap, no pull): the same image ID on
        Docker and buildah, kept when the tag already holds one of the same recipe. Prints its reference and ID."""
        parse_reference(tag, "--tag", registry=False, digest=False)
        recipe = BaseRecipe(suite=suite, packages=tuple(dict.fromkeys([*DEFAULT_PACKAGES, *package])), mirror=mirror,
                            platform=parse_platform(platform))
        engine = get_backend(backend)
        image_id, made = make_base(engine, tag, recipe, force=force)
        stderr.print(f"{'made' if made else 'kept'} {tag} ({recipe.text}) in {engine.name}", markup=False)
        emit_text(f"{tag} {image_id}")
