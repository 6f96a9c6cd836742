"""Before planning: every source's and sink's URL rendered for this shard and run, each source's identity
learnt (its key depends on it), and one manifest per built-in step written into the run directory.

file:// and http(s) sources are looked at here; S3 through a subprocess (`transfer probe`), since only
the transfer steps' own code imports boto3. Whatever cannot be reached (a missing object or bucket,
access denied, the endpoint down) stops the run before it starts: one line, exit 3.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagekit_core import contract, proc
from imagekit_core.errors import EXIT_ENVIRONMENT, CommandFailed, EnvironmentMissing
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.sources import TRANSFER_MODULE, placeholder_values, render_url

from ..observe.journal import runs_in
from ..transfer import files, web
from ..transfer.manifest import Entry, Manifest, write_manifest

if TYPE_CHECKING:
    from .options import RunOptions

RUNTIME_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds imagekit_runtime


def run_name(journal_path: Path, run_id: str) -> str:
    """What {run} stands for: $IMAGEKIT_RUN when set (a deployment names the job once, for every shard and
    every pod restart); else the first run recorded in this shard's journal, so a resume on the same run
    directory keeps the name of the run it resumes; else this run's id."""
    return os.environ.get(contract.RUN_NAME) or next(iter(runs_in(journal_path)), run_id)


def source_identities(spec: PipelineSpec, options: RunOptions, run_id: str) -> dict[str, str]:
    """The conductor's call: prepare this run's transfers; source step -> identity, for the keys."""
    values = placeholder_values(shard=options.shard_index, shard_count=options.shard_count, pipeline=spec.name,
                                run=run_name(options.layout.journal, run_id),
                                params=options.params)
    return prepare_transfers(spec, values, options.layout.run_dir)


def manifests_of(spec: PipelineSpec, values: Mapping[str, Any]) -> list[Manifest]:
    """Sources and sinks with their URLs rendered; sources not yet looked at (no entries)."""
    made = [Manifest("source", s.name, render_url(s.url, values), s.scheme, s.is_prefix) for s in spec.sources]
    for sink in spec.sinks:
        url = render_url(sink.url, values)
        made.append(Manifest("sink", sink.name, url, sink.scheme, url.endswith("/")))
    return made


def prepare_transfers(spec: PipelineSpec, values: Mapping[str, Any], run_dir: Path | None) -> dict[str, str]:
    """Look at every source (and each s3 sink's bucket); write the manifests when run_dir is given.
    Returns source step -> identity."""
    manifests = manifests_of(spec, values)
    if not manifests:
        return {}
    on_s3 = [m for m in manifests if m.scheme == "s3"]
    found = probe_s3(on_s3, run_dir) if on_s3 else {}
    identities: dict[str, str] = {}
    for manifest in manifests:
        if manifest.kind == "source":
            entries = found[manifest.step] if manifest.scheme == "s3" else \
                files.probe(manifest) if manifest.scheme == "file" else web.probe(manifest)
            manifest = Manifest(**{**manifest.__dict__, "entries": entries})
            identities[manifest.step] = manifest.identity()
        if run_dir is not None:
            write_manifest(run_dir, manifest)
    return identities


def probe_s3(manifests: list[Manifest], run_dir: Path | None) -> dict[str, tuple[Entry, ...]]:
    """The entries of each s3 source (sinks: their bucket checked), from `transfer probe` in a subprocess
    (its request and answer in the run directory: a pod's root filesystem is read-only)."""
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=contract.TEMPORARY_PREFIX + "probe-", dir=run_dir) as scratch:
        request, answer = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        request.write_text(json.dumps([m.to_json() for m in manifests]))
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(RUNTIME_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        try:
            proc.run([sys.executable, "-m", TRANSFER_MODULE, "probe", request, answer], env=environment)
        except CommandFailed as exc:
            lines = exc.output.strip().splitlines()
            line = lines[-1].removeprefix("error: ") if lines else f"exited {exc.returncode}"
            if exc.returncode == EXIT_ENVIRONMENT:
                raise EnvironmentMissing(line) from None
            raise EnvironmentMissing(f"looking at the s3 sources failed: {line}") from None
        return {step: tuple(Entry(**e) for e in entries) for step, entries in json.loads(answer.read_text()).items()}
