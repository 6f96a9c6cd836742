"""What a run of the pipeline really took in shm (its journal), held against the pipeline's `shm`.

`deploy render --measured-run JOURNAL` reads the newest run of a journal (a host run's
`<shm>/<pipeline>/shard-<i>/run/journal.jsonl`): its peak shm and the size of every committed
item, all in the pages they take (st_blocks × 512, as the runtime counts them). A pod's shm volume
is `shm` in size and its memory limit is derived from it, so a run that peaked above `shm` would
fail in the pod with ENOSPC: render warns, naming the largest item and the `shm` to declare.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imagekit_core.errors import UsageError
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.quantity import format_bytes, human_size
from imagekit_runtime.observe.journal import newest_run, read_journal

MIB = 1024 * 1024


@dataclass(frozen=True)
class MeasuredShm:
    journal: Path
    peak: int  # bytes of shm pages the run held at most
    largest: str | None  # step/data of the largest committed item
    largest_bytes: int


def measured_shm(journal: Path) -> MeasuredShm:
    """The newest run's peak shm and largest item; a UsageError when the journal has no finished run."""
    if not journal.is_file():
        raise UsageError(f"--measured-run {journal}: no such file (fix: give a run's journal.jsonl)")
    view = newest_run(list(read_journal(journal)))
    if view.peak_shm_bytes is None:
        raise UsageError(f"--measured-run {journal}: no finished run in it (fix: give the journal.jsonl of a run "
                         "that ended, e.g. <shm>/<pipeline>/shard-0/run/journal.jsonl after `imagekit run`)")
    largest = max(view.outputs.items(), key=lambda item: item[1], default=(None, 0))
    return MeasuredShm(journal=journal, peak=int(view.peak_shm_bytes), largest=largest[0], largest_bytes=largest[1])


def shm_warning(spec: PipelineSpec, measured: MeasuredShm) -> str | None:
    """A warning when the measured run needed more shm than the pipeline declares; None when it fits."""
    if measured.peak <= spec.shm_bytes:
        return None
    largest = f"; the largest item is {measured.largest} ({human_size(measured.largest_bytes)})" \
        if measured.largest else ""
    needed = format_bytes(-(-measured.peak // MIB) * MIB)
    return (f"the run in {measured.journal} took {human_size(measured.peak)} of shm (in pages), more than "
            f"`shm: {format_bytes(spec.shm_bytes)}` in {spec.file}{largest}: in these pods it fails with ENOSPC "
            f"(fix: declare `shm: {needed}` or more)")
