"""Checkpoints of committed outputs on node-local SSD and, for `major` outputs, on a PersistentVolume.

One checkpoint holds one data item:

    <tier>/<pipeline>/shard-<i>/<data>@<key16>/
        data            the file or directory the step wrote
        manifest.json   files, sizes, sha256, step, run, keys, shard — written last

A file's sha256 is that of its bytes up to 32 MiB; above, the sha256 of the
concatenated sha256s of its 32 MiB chunks (`hash` in the manifest says which).

It is written under a temporary name, fsynced, and made visible by a rename,
so it is whole or absent. It is trusted only when its manifest parses, its
keys match and every checksum verifies; anything else is moved aside to
`.quarantine/` with a warning and the next level down is tried.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagekit_core.contract import (
    CHECKPOINT_DATA,
    CHECKPOINT_MANIFEST,
    CHECKPOINT_PACK,
    COMMIT_RECORD,
    QUARANTINE_DIR,
    QUARANTINE_REASON_SUFFIX,
    TEMPORARY_PREFIX,
    checkpoint_item_name,
    shard_dir_name,
)
from imagekit_core.spec import PipelineSpec

from ..data.copier import CopyJob
from ..data.datastore import CommitRecord, remove_tree
from ..data.sandbox import UnsafeOutput, find_escape, scan_output
from ..data.seal import Tampered, seal
from ..keys import data_key
from ..layout import RunLayout
from .filehash import HASH_DESCRIPTION, copy_and_hash, fsync_dir, hash_file, walk_files
from .packed import PackMismatch, unpack, verify_pack, write_packed

log = logging.getLogger("imagekit.runtime")

MANIFEST = CHECKPOINT_MANIFEST


class CorruptCheckpoint(Exception):
    pass


def _write_content(source: Path, temporary: Path) -> list[dict[str, Any]]:
    """The checkpoint's data (a file, or a directory as data.tar + data/); returns the manifest's entries."""
    target = temporary / CHECKPOINT_DATA
    if source.is_dir():
        return write_packed(source, target, temporary / CHECKPOINT_PACK)
    return [{"path": "", "size": source.lstat().st_size, "mode": source.lstat().st_mode & 0o7777,
             "sha256": copy_and_hash(source, target)}]


def _verify_files(item: Path, manifest: dict[str, Any]) -> None:
    """Every entry of the manifest is there, whole (size, sha256, link target), and nothing else is."""
    target = item / CHECKPOINT_DATA
    on_disk = [entry for entry in manifest["files"] if not entry.get("packed")]
    listed = {entry["path"] for entry in on_disk}
    present = {(p.relative_to(target).as_posix() if target.is_dir() else "") for p in walk_files(target)
               if not p.is_dir() or p.is_symlink()} if os.path.lexists(target) else set()
    if listed != present:
        raise CorruptCheckpoint(f"files differ from the manifest: {sorted(listed ^ present)[:3]}")
    for entry in on_disk:
        path = target / entry["path"] if entry["path"] else target
        name = entry["path"] or "data"
        if "link" in entry or path.is_symlink():
            if not path.is_symlink() or os.readlink(path) != entry.get("link"):
                raise CorruptCheckpoint(f"{name}: a link where the manifest lists none, or another link")
            continue
        if path.stat().st_size != entry["size"]:
            raise CorruptCheckpoint(f"{name}: size {path.stat().st_size}, manifest says {entry['size']}")
        if hash_file(path) != entry["sha256"]:
            raise CorruptCheckpoint(f"{name}: sha256 mismatch")
    if manifest.get("packed"):
        try:
            verify_pack(item / manifest["packed"], manifest)
        except (PackMismatch, OSError) as exc:
            raise CorruptCheckpoint(f"{manifest['packed']}: {exc}") from None


def _restore_content(item: Path, manifest: dict[str, Any], temporary: Path) -> None:
    """Copy a checkpoint's data to `temporary`: the big files, then the packed entries, with their modes."""
    if (item / CHECKPOINT_DATA).is_dir():
        shutil.copytree(item / CHECKPOINT_DATA, temporary, symlinks=True)
    else:
        shutil.copyfile(item / CHECKPOINT_DATA, temporary)
        if "mode" in manifest["files"][0]:
            os.chmod(temporary, manifest["files"][0]["mode"])
    if manifest.get("packed"):
        try:
            unpack(item / manifest["packed"], manifest, temporary)
        except PackMismatch as exc:
            raise CorruptCheckpoint(f"{manifest['packed']}: {exc}") from None


@dataclass
class Tier:
    name: str  # ssd or pv
    root: Path  # <tier>/<pipeline>/shard-<i>

    def item_dir(self, data: str, key: str) -> Path:
        return self.root / checkpoint_item_name(data, key)

    @property
    def quarantine(self) -> Path:
        return self.root / QUARANTINE_DIR


@dataclass
class CheckpointStore:
    layout: RunLayout
    pipeline: str
    shard_index: int
    major: tuple[str, ...]
    tiers: list[Tier]
    warnings: list[str]
    _verified: dict[tuple[str, str], str | None] = field(default_factory=dict)

    @classmethod
    def for_spec(cls, spec: PipelineSpec, layout: RunLayout, shard_index: int, warnings: list[str]) -> CheckpointStore:
        tiers = []
        for name, base in (("ssd", layout.ssd_dir), ("pv", layout.pv_dir)):
            if base is not None:
                tiers.append(Tier(name, base / spec.name / shard_dir_name(shard_index)))
        return cls(layout=layout, pipeline=spec.name, shard_index=shard_index, major=spec.checkpoint.major,
                   tiers=tiers, warnings=warnings)

    def tier(self, name: str) -> Tier | None:
        return next((tier for tier in self.tiers if tier.name == name), None)

    # ------------------------------------------------------------- write
    def jobs_for(self, step: str, data: str, step_key: str, source: Path, run: str,
                 on_written: Callable[[str, Path], None] | None = None,
                 check: Callable[[], None] | None = None) -> list[CopyJob]:
        """Copy jobs for this item: SSD always, PV when it is major. on_written(tier, path) follows each; check()
        comes before each is renamed into place (write)."""
        jobs = []
        for tier in self.tiers:
            if tier.name == "pv" and data not in self.major:
                continue

            def action(tier: Tier = tier) -> None:
                written = self.write(tier, step, data, step_key, source, run, check)
                if written is not None and on_written is not None:
                    on_written(tier.name, written)

            jobs.append(CopyJob(description=f"{tier.name} checkpoint of {data}", owner=(step, data), action=action))
        return jobs

    def write(self, tier: Tier, step: str, data: str, step_key: str, source: Path, run: str,
              check: Callable[[], None] | None = None) -> Path | None:
        """Checkpoint `source` into the tier, whole or not at all; `check()`, after the copy and before the
        rename, may refuse it (a sealed item that changed: seal.Tampered)."""
        key = data_key(step_key, data)
        final = tier.item_dir(data, key)
        if (final / MANIFEST).exists():
            return final  # the same content is already checkpointed
        temporary = tier.root / f"{TEMPORARY_PREFIX}{final.name}-{os.getpid()}-{time.monotonic_ns()}"
        escape = find_escape(source)  # committed data passed this check; a late change must not leak either
        if escape:
            raise UnsafeOutput(f"not checkpointing {data}: {escape}")
        try:
            tier.root.mkdir(parents=True, exist_ok=True)
            temporary.mkdir()
            started = time.monotonic()
            files = _write_content(source, temporary)
            manifest = {
                "pipeline": self.pipeline, "shard": self.shard_index, "step": step, "data": data,
                "step_key": step_key, "key": key, "run": run, "kind": "dir" if source.is_dir() else "file",
                "files": files, "bytes": sum(f["size"] for f in files), "created_at": time.time(),
                "hash": HASH_DESCRIPTION, "packed": CHECKPOINT_PACK if source.is_dir() else None,
            }
            with open(temporary / MANIFEST, "w") as manifest_file:
                manifest_file.write(json.dumps(manifest, sort_keys=True))  # dumps: the C encoder
                manifest_file.flush()
                os.fsync(manifest_file.fileno())
            for directory, _dirs, _files in os.walk(temporary):  # data/ holds the big files only
                fsync_dir(Path(directory))
            if check is not None:
                check()
            if final.exists():  # an untrusted leftover under the same name
                self._quarantine(tier, final, "replaced by a new checkpoint")
            os.rename(temporary, final)
            fsync_dir(tier.root)
            log.debug("%s checkpoint of %s: %d bytes in %.2fs", tier.name, data, manifest["bytes"],
                      time.monotonic() - started)
            return final
        except Tampered:
            remove_tree(temporary)
            raise
        except OSError as exc:
            remove_tree(temporary)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                message = f"{tier.name} is full: no {tier.name} checkpoint for {data} ({exc.strerror})"
                log.warning("warning: %s", message)
                self.warnings.append(message)
                return None
            raise

    # -------------------------------------------------------------- read
    def locate(self, step: str, data: str, step_key: str) -> str | None:
        """The first tier holding an intact checkpoint of this item with this key, or None."""
        cache_key = (step, data)
        if cache_key in self._verified:
            return self._verified[cache_key]
        found = None
        for tier in self.tiers:
            item = tier.item_dir(data, data_key(step_key, data))
            if not item.exists():
                continue
            try:
                self.verify(item, step_key, data)
            except CorruptCheckpoint as exc:
                message = f"{tier.name} checkpoint {item} is not trusted: {exc}"
                log.warning("warning: %s", message)
                self.warnings.append(message)
                self._quarantine(tier, item, str(exc))
                continue
            found = tier.name
            break
        if found is None:
            self._explain_mismatches(data, data_key(step_key, data))
        self._verified[cache_key] = found
        return found

    def _explain_mismatches(self, data: str, key: str) -> None:
        """Say why checkpoints of this data that do exist are not used: they were made from something else."""
        for tier in self.tiers:
            if not tier.root.is_dir():
                continue
            others = [p.name for p in tier.root.glob(f"{data}@*") if p.name != tier.item_dir(data, key).name]
            if others:
                log.info("not using %d %s checkpoint(s) of %s (%s): made by another version of the step, from "
                         "other inputs or with other params", len(others), tier.name, data, ", ".join(sorted(others)))

    def verify(self, item: Path, step_key: str, data: str) -> dict[str, Any]:
        try:
            manifest: dict[str, Any] = json.loads((item / MANIFEST).read_text())
        except FileNotFoundError:
            raise CorruptCheckpoint("no manifest (torn write)") from None
        except json.JSONDecodeError:
            raise CorruptCheckpoint("manifest is not valid JSON") from None
        if not isinstance(manifest, dict):
            raise CorruptCheckpoint("manifest is not a JSON object")
        expected = {"key": data_key(step_key, data), "data": data, "pipeline": self.pipeline, "shard": self.shard_index}
        for field_name, value in expected.items():
            if manifest.get(field_name) != value:
                raise CorruptCheckpoint(f"{field_name} is {manifest.get(field_name)!r}, expected {value!r} (foreign checkpoint)")
        try:
            _verify_files(item, manifest)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:  # a manifest of another shape
            raise CorruptCheckpoint(f"manifest lacks or garbles a field ({type(exc).__name__}: {exc})") from None
        # Restored as it is into shm: as strict as a commit, a link may not lead outside the item.
        escape = find_escape(item / CHECKPOINT_DATA) if os.path.lexists(item / CHECKPOINT_DATA) else None
        if escape:
            raise CorruptCheckpoint(escape)
        return manifest

    def restore(self, step: str, data: str, step_key: str, source: str, run: str) -> None:
        """Bring a verified checkpoint back into shm as a committed output of `step`."""
        tier = self.tier(source)
        assert tier is not None
        item = tier.item_dir(data, data_key(step_key, data))
        manifest = json.loads((item / MANIFEST).read_text())
        committed = self.layout.committed_dir(step)
        record_path = committed / COMMIT_RECORD
        try:
            record = CommitRecord.from_json(json.loads(record_path.read_text()))
            if record.key != step_key:
                raise ValueError
        except (FileNotFoundError, ValueError, json.JSONDecodeError, KeyError):
            remove_tree(committed)
            record = CommitRecord(step=step, key=step_key, outputs={}, run=run)
        committed.mkdir(parents=True, exist_ok=True)
        temporary = committed / f".restore-{data}"
        remove_tree(temporary)
        _restore_content(item, manifest, temporary)
        os.rename(temporary, committed / data)
        record.outputs[data] = scan_output(committed / data).allocated
        record.seals[data] = seal(committed / data)  # read-only again, as a commit leaves it
        temporary_record = committed / f"{COMMIT_RECORD}.tmp"
        temporary_record.write_text(json.dumps(record.to_json(), sort_keys=True))
        os.replace(temporary_record, record_path)

    # -------------------------------------------------------------- care
    def _quarantine(self, tier: Tier, item: Path, reason: str) -> None:
        tier.quarantine.mkdir(parents=True, exist_ok=True)
        destination = tier.quarantine / f"{item.name}-{int(time.time() * 1000)}"
        try:
            os.rename(item, destination)
            (destination.parent / f"{destination.name}{QUARANTINE_REASON_SUFFIX}").write_text(reason + "\n")
        except OSError:
            remove_tree(item)

    def clean_temporaries(self) -> None:
        """Remove half-written checkpoints left by a crash: they were never visible, never trusted."""
        for tier in self.tiers:
            if tier.root.is_dir():
                for entry in tier.root.iterdir():
                    if entry.name.startswith(TEMPORARY_PREFIX):
                        remove_tree(entry)

    def prune(self, keep_keys: set[str], retention: int, run_order: list[str] | None = None) -> list[Path]:
        """Keep checkpoints with current keys and those of the newest `retention` runs; remove the rest. Runs are
        ordered as the journal lists them (run_order, oldest first), not by a clock that may have been wrong;
        a run the journal does not know counts as older than any it does."""
        removed: list[Path] = []
        for tier in self.tiers:
            if not tier.root.is_dir():
                continue
            by_run: dict[str, list[tuple[float, Path]]] = {}
            for entry in tier.root.iterdir():
                if entry.name.startswith(".") or not (entry / MANIFEST).exists():
                    continue
                try:
                    manifest = json.loads((entry / MANIFEST).read_text())
                except (OSError, json.JSONDecodeError):
                    continue
                if not isinstance(manifest, dict) or manifest.get("key") in keep_keys:
                    continue
                created = manifest.get("created_at", 0.0)
                by_run.setdefault(str(manifest.get("run", "")), []).append(
                    (float(created) if isinstance(created, (int, float)) else 0.0, entry))
            order = {run: index for index, run in enumerate(run_order or [])}
            runs = sorted(by_run, key=lambda r: (order.get(r, -1), max(t for t, _ in by_run[r])), reverse=True)
            for run in runs[retention:]:
                for _created, entry in by_run[run]:
                    remove_tree(entry)
                    removed.append(entry)
        return removed

    def describe(self, step: str, data: str, step_key: str) -> dict[str, bool]:
        """Which tiers hold a checkpoint of the item with this key (manifest present; not verified)."""
        return {tier.name: (tier.item_dir(data, data_key(step_key, data)) / MANIFEST).exists() for tier in self.tiers}
