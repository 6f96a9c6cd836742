"""Deliver pipeline results, whole, to the results directory, and mark a shard complete."""
from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imagekit_core.contract import RESULT_RECORDS_DIR, TEMPORARY_PREFIX

from .datastore import remove_tree
from .sandbox import UnsafeOutput, find_escape


def copy_item(source: Path, destination: Path, check: Callable[[], None] | None = None) -> None:
    """Copy a file or directory tree to destination via a temporary name and a rename; `check()`, after the
    copy and before the rename, may refuse it (a sealed item that changed: seal.Tampered).

    Never through a link: links inside the tree are copied as links, and a tree that
    leads outside itself (sandbox.find_escape) is refused. The copy is the user's: writable by its owner,
    though the committed data it comes from is read-only (seal.py)."""
    escape = find_escape(source)
    if escape:
        raise UnsafeOutput(f"not copying {source} to {destination}: {escape}")
    temporary = destination.with_name(f"{TEMPORARY_PREFIX}{destination.name}-{os.getpid()}")
    remove_tree(temporary)
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, temporary, symlinks=True, copy_function=shutil.copyfile)
            _owner_writable_directories(temporary)
        else:
            shutil.copyfile(source, temporary, follow_symlinks=False)
        if check is not None:
            check()
    except BaseException:  # a full disk, a name too long: no partial copy is left among the results
        remove_tree(temporary)
        raise
    if destination.is_dir() and not destination.is_symlink():
        old = destination.with_name(f".old-{destination.name}-{os.getpid()}")
        os.rename(destination, old)
        os.rename(temporary, destination)
        remove_tree(old)
    else:
        os.replace(temporary, destination)


def _owner_writable_directories(tree: Path) -> None:
    """copytree gives each directory its source's mode: a sealed directory's has no write bit."""
    for directory, _dirs, _files in os.walk(tree):
        mode = stat.S_IMODE(os.lstat(directory).st_mode)
        if not mode & stat.S_IWUSR:
            os.chmod(directory, mode | stat.S_IWUSR)


def deliver(source: Path, results_dir: Path, data: str, key: str, check: Callable[[], None] | None = None) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    copy_item(source, results_dir / data, check)
    records = results_dir / RESULT_RECORDS_DIR
    records.mkdir(exist_ok=True)
    record = records / f"{data}.json"
    temporary = record.with_suffix(".tmp")
    temporary.write_text(json.dumps({"data": data, "key": key, "delivered_at": time.time()}))
    os.replace(temporary, record)


def delivered(results_dir: Path, data: str, key: str) -> bool:
    try:
        record = json.loads((results_dir / RESULT_RECORDS_DIR / f"{data}.json").read_text())
    except (OSError, json.JSONDecodeError):  # absent, or unreadable (a file where the records should be): not so
        return False
    return record.get("key") == key and os.path.lexists(results_dir / data)


def write_completion(marker: Path, content: dict[str, Any]) -> None:
    temporary = marker.with_name(marker.name + ".tmp")
    with open(temporary, "w") as marker_file:
        json.dump(content, marker_file, sort_keys=True)
        marker_file.flush()
        os.fsync(marker_file.fileno())
    os.replace(temporary, marker)


def read_completion(marker: Path) -> dict[str, Any] | None:
    """The completion marker's content; None when absent, being written, unreadable or not a mapping."""
    try:
        content = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None
