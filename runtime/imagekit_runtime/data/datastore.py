"""Named data in shared memory: staging, atomic commit by rename, freeing.

A step writes its outputs under staging/<step>/. Exit 0 commits them all at
once: the commit record is written into the staging directory, then the whole
directory is renamed to committed/<step>. A rename is atomic, so a committed
directory always has its record and every output; anything else is staging
and is discarded. Before that, every output is checked by sandbox.quick_check:
an output that links out of the sandbox, or is a device, socket or FIFO, fails
the step and nothing of it is committed. A directory output's per-file half of
the check (hard links, its size) comes later (vetting.py): until then its record
says `vetted: false`, and a later run checks such a commit before it reuses it
(shard_state.plan_recovery). Committed data is sealed (seal.py): closed to writes at the commit, and
checked later against the seal its record keeps (a file's taken by the commit, a directory's by its
vetting).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagekit_core.contract import COMMIT_RECORD, output_var

from ..layout import RunLayout
from .sandbox import OutputRefused, UnsafeOutput, quick_check, refusal_message
from .seal import close, remove, seal, what


class MissingOutput(OutputRefused):
    """A step exited 0 without writing an output it declares."""


@dataclass
class CommitRecord:
    step: str
    key: str
    outputs: dict[str, int]  # data name -> bytes it takes in shm (allocated blocks, as du counts)
    run: str
    committed_at: float = field(default_factory=time.time)
    vetted: bool = True  # False until the per-file check of its directory outputs passed (sizes 0 till then)
    seals: dict[str, str] = field(default_factory=dict)  # data name -> its seal (seal.py), once sealed

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "key": self.key, "outputs": self.outputs, "run": self.run,
                "committed_at": self.committed_at, "vetted": self.vetted, "seals": self.seals}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitRecord:
        return cls(step=data["step"], key=data["key"], outputs=dict(data["outputs"]), run=data["run"],
                   committed_at=data.get("committed_at", 0.0), vetted=data.get("vetted", True),
                   seals=dict(data.get("seals") or {}))


@dataclass
class DataStore:
    layout: RunLayout

    def prepare_staging(self, step: str) -> Path:
        """An empty staging directory for a new attempt; leftovers of an earlier one are removed."""
        staging = self.layout.staging_dir(step)
        remove_tree(staging)
        staging.mkdir(parents=True)
        return staging

    def discard_staging(self, step: str) -> None:
        remove_tree(self.layout.staging_dir(step))

    def commit(self, step: str, key: str, outputs: tuple[str, ...], run: str,
               admit: Callable[[int], None] | None = None, vet_later: bool = False) -> CommitRecord:
        """Commit the staged outputs; `admit(bytes)` may refuse them (raising OutputRefused) before the rename.
        vet_later: the record says unvetted whatever the outputs (the vetting has inputs to check).

        No stat per file: sandbox.quick_check settles a file output with one lstat, a directory by its
        entries' types; a directory's hard links and size are left to vetting (record.vetted is False)."""
        staging = os.fspath(self.layout.staging_dir(step))  # strings: this is on the way to the consumers
        sizes: dict[str, int] = {}
        seals: dict[str, str] = {}
        vetted = not vet_later
        for data in outputs:
            path = os.path.join(staging, data)
            try:
                quick = quick_check(path)  # nothing that leads out of the sandbox is committed
            except FileNotFoundError:
                raise MissingOutput(f"step {step} exited 0 but did not write its output {data!r} "
                                    f"(expected at ${output_var(data)})") from None
            if quick.problem:
                raise UnsafeOutput(refusal_message(step, data, quick.problem))
            sizes[data] = quick.allocated or 0
            if quick.allocated is None:
                vetted = False  # a directory: closed now (one chmod), its seal taken by the vetting walk
                close(Path(path))
            else:
                seals[data] = seal(Path(path))  # a file: one chmod, one lstat (the rename below keeps its ctime)
        if admit is not None:
            admit(sum(sizes.values()))
        record = CommitRecord(step=step, key=key, outputs=sizes, run=run, vetted=vetted, seals=seals)
        _write_whole(os.path.join(staging, COMMIT_RECORD), json.dumps(record.to_json(), sort_keys=True).encode())
        committed = self.layout.committed_dir(step)
        try:
            os.rename(staging, committed)
        except OSError:  # a stale commit of other content (a non-empty directory): replace it
            remove_tree(committed)
            os.rename(staging, committed)
        return record

    def mark_vetted(self, step: str, sizes: dict[str, int], seals: dict[str, str]) -> CommitRecord:
        """The per-file check of a commit passed: its record gets the sizes and the seals it lacks, and may be
        reused from now on. A seal taken at the commit (a file's) is kept: the vetting walk takes its seals after
        the consumers started, and one of them may have changed the file by then; the commit's seal is the one
        the data must still match (a later seal would pass the changed file on to the results and checkpoints)."""
        record = self.read_record(step)
        if record is None:
            raise FileNotFoundError(self.layout.commit_record(step))
        record.outputs.update(sizes)
        record.seals = {**seals, **record.seals}
        record.vetted = True
        self.write_record(record)
        return record

    def sealed_inputs(self, inputs: dict[str, str]) -> dict[str, tuple[Path, str]]:
        """The committed items behind `inputs` (data -> producer) and their seals, each named as a message
        names it; an item its record has no seal for (a runtime that did not seal) is left out."""
        found: dict[str, tuple[Path, str]] = {}
        for data, producer in inputs.items():
            record = self.read_record(producer)
            expected = record.seals.get(data) if record is not None else None
            if expected is not None:
                found[what(producer, data)] = (self.layout.input_path(producer, data), expected)
        return found

    def write_record(self, record: CommitRecord) -> None:
        """Replace a committed step's record, whole."""
        final = os.fspath(self.layout.commit_record(record.step))
        _write_whole(f"{final}.tmp", json.dumps(record.to_json(), sort_keys=True).encode())
        os.replace(f"{final}.tmp", final)

    def read_record(self, step: str) -> CommitRecord | None:
        try:
            return CommitRecord.from_json(json.loads(self.layout.commit_record(step).read_text()))
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, KeyError, TypeError):
            return None

    def available(self, step: str, data: str, key: str) -> bool:
        """Is `data` of `step` committed in shm with the expected key?"""
        record = self.read_record(step)
        return (record is not None and record.vetted and record.key == key and data in record.outputs
                and os.path.lexists(self.layout.input_path(step, data)))

    def size_of(self, step: str, data: str) -> int:
        """The bytes a committed item takes in shm, as its commit record says (0 when unknown)."""
        record = self.read_record(step)
        return record.outputs.get(data, 0) if record is not None else 0

    def free(self, step: str, data: str) -> int:
        """Delete a committed data item from shm; returns the bytes released (from the commit record: no walk)."""
        size = self.size_of(step, data)
        remove_tree(self.layout.input_path(step, data))
        return size

    def drop_step(self, step: str) -> None:
        remove_tree(self.layout.committed_dir(step))


def _write_whole(path: str, content: bytes) -> None:
    """A small file in one write, no text layer (the commit record is on the way to the consumers)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a file or a directory tree, sealed or not (nothing when it is gone)."""
    remove(path)
