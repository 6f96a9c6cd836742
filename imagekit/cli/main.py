"""The `imagekit` command: assembles one module per verb."""
from __future__ import annotations

import typer

from . import build, deploy, inspect, lock, pod, push, run, sbom, validate
from .common import setup_logging

app = typer.Typer(
    name="imagekit",
    help="Build a pipeline of step programs into one image and run it as a pod pipeline over shared memory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="log every external command")) -> None:
    """imagekit: build, run and deploy pod pipelines."""
    setup_logging(verbose)


# Each verb lives in its own module and registers itself here.
for verb in (validate, run, deploy, build, lock, sbom, push, inspect, pod):
    verb.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
