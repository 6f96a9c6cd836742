"""seal.py: committed items made read-only, and any later change to them found; the journal's writer notices
another process's writes."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagekit_core.contract import Event
from imagekit_runtime.data.seal import Tampered, check, remove, seal, seal_of
from imagekit_runtime.observe.journal import Journal


def tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "leaf").write_text("leaf")
    (root / "top").write_text("top")
    (root / "link").symlink_to("top")
    return root


def test_sealing_closes_the_item_itself_and_the_seal_holds_while_nothing_changes(tmp_path: Path) -> None:
    item = tree(tmp_path / "item")
    sealed = seal(item)
    assert not os.lstat(item).st_mode & 0o222
    for path in (item / "sub", item / "sub" / "leaf", item / "top"):  # the step's modes, kept
        assert os.lstat(path).st_mode & 0o200, path
    assert seal_of(item) == sealed
    (item / "top").read_text()  # reading changes nothing
    check(item, sealed, "'item'")
    assert seal(item) == sealed  # sealing again is no change


@pytest.mark.parametrize("change", ["write back", "added", "removed", "link swapped", "moved"])
def test_every_kind_of_change_after_the_seal_is_found(tmp_path: Path, change: str) -> None:
    item = tree(tmp_path / "item")
    sealed = seal(item)
    leaf = item / "sub" / "leaf"
    before = os.lstat(leaf)
    if change == "write back":  # the same size, the mtime put back: the ctime still moved
        leaf.write_text("LEAF")
        os.utime(leaf, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif change == "added":
        (item / "sub" / "new").write_text("")
    elif change == "removed":
        leaf.unlink()
    elif change == "link swapped":
        leaf.unlink()
        leaf.symlink_to("/etc/passwd")
    else:
        item.rename(tmp_path / "elsewhere")
    with pytest.raises(Tampered, match="'item'"):
        check(item, sealed, "'item'")


def test_a_file_item_is_sealed_by_itself(tmp_path: Path) -> None:
    item = tmp_path / "file"
    item.write_bytes(b"x" * 10)
    sealed = seal(item)
    assert stat.S_IMODE(os.lstat(item).st_mode) == 0o444
    check(item, sealed, "'file'")
    item.unlink()
    with pytest.raises(Tampered, match="was removed after its commit"):
        check(item, sealed, "'file'")


def test_remove_takes_a_sealed_tree_away(tmp_path: Path) -> None:
    item = tree(tmp_path / "item")
    seal(item)
    (tmp_path).chmod(0o555)
    try:
        remove(item)
    finally:
        tmp_path.chmod(0o755)
    assert not item.exists()
    remove(item)  # gone already: nothing
    single = tmp_path / "single"
    single.write_text("x")
    seal(single)
    remove(single)
    assert not single.exists()


def test_the_journal_notices_a_line_another_process_appends(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, "run-1")
    journal.record(Event.RUN_START)
    assert not os.stat(path).st_mode & 0o222  # read-only while the run has it
    assert journal.check() is None
    journal.record(Event.PLAN)
    assert journal.check() is None
    path.chmod(0o644)
    with open(path, "a") as forger:
        forger.write('{"event": "run-end"}\n')
    assert "written by another process" in (journal.check() or "")
    journal.close()
    second = Journal(path, "run-2")  # a later run opens it again
    second.record(Event.RUN_START)
    assert second.check() is None


def test_the_journal_notices_it_was_replaced(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path, "run-1")
    journal.record(Event.RUN_START)
    os.replace(tmp_path / "journal.jsonl", tmp_path / "kept")
    path.write_text("")
    assert "removed or replaced" in (journal.check() or "")
