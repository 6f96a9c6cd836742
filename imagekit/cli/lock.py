"""`imagekit lock PIPELINE`: write or refresh each step's requirements.lock (exact versions, sha256 hashes)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from imagekit.build.builder import probe_target
from imagekit.build.deps import step_lock
from imagekit.build.engines import BACKENDS, get_backend
from imagekit.build.lock import current_lock, lock_path
from imagekit_core.spec import load_pipeline

from .common import OutputFormat, emit_json, emit_text


def register(app: typer.Typer) -> None:
    @app.command()
    def lock(
        pipeline: Path = typer.Argument(..., help="pipeline.yaml, or a directory holding one"),
        base: str = typer.Option(None, "--base", help="base image whose Python the locks are for "
                                                      "(default: the pipeline's `base`)"),
        backend: str = typer.Option(os.environ.get("IMAGEKIT_BACKEND", "docker"), "--backend", "-b",
                                    help=f"engine holding the base image: {' or '.join(BACKENDS)}"),
        python_version: str = typer.Option(None, "--python-version", help="the base image's Python "
                                                                          "(default: asked from the image)"),
        check: bool = typer.Option(False, "--check", help="write nothing; exit 1 when a lock is missing or stale"),
        output: OutputFormat = typer.Option(OutputFormat.text, "--output", "-o", help="text or json"),
    ) -> None:
        """Resolve each step's requirements (following -r/-c includes) for the base image's Python and
        platform, and write requirements.lock beside the step: commit it; builds install exactly it."""
        spec = load_pipeline(pipeline)
        engine = get_backend(backend)
        engine.check()
        base_id = engine.ensure_image(base or spec.base)
        target = probe_target(engine, base_id, python_version)
        results = []
        stale = []
        for step in spec.packaged_steps:
            if step.requirements is None:
                continue
            if check:
                current = current_lock(step, target)
                if current is None:
                    stale.append(step.name)
                results.append({"step": step.name, "lock": str(lock_path(step, target.platform)),
                                "current": current is not None})
                continue
            with tempfile.TemporaryDirectory(prefix="imagekit-lock.") as wheels:
                written = step_lock(step, target, Path(wheels), refresh=True)
            results.append({"step": step.name, "lock": str(written.path),
                            "packages": {pin.name: pin.version for pin in written.pins}})
            if output is OutputFormat.text:
                pins = ", ".join(f"{pin.name} {pin.version}" for pin in written.pins)
                emit_text(f"{step.name}: {written.path} ({pins})")
        if output is OutputFormat.json:
            emit_json({"target": target.key(), "locks": results})
        elif check:
            for result in results:
                state = "current" if result["current"] else "missing or stale: run imagekit lock"
                emit_text(f"{result['step']}: {result['lock']} {state}")
        if stale:
            raise typer.Exit(1)
