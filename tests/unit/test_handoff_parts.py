"""The pieces of a fast handoff, in-process: the commit's stat-free check, vetting off the critical path, the
unvetted record, and the done FIFO."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from imagekit_runtime.datastore import DataStore
from imagekit_runtime.exit_watch import ExitWatcher
from imagekit_runtime.layout import RunLayout
from imagekit_runtime.sandbox import UnsafeOutput, quick_check
from imagekit_runtime.vetting import Vetting, vet


def make_tree(root: Path, files: int = 30) -> Path:
    for number in range(files):
        directory = root / f"d{number // 10}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{number}").write_text("x")
    return root


def test_the_commit_check_settles_a_file_and_leaves_a_directory_s_files_unstatted(tmp_path: Path) -> None:
    single = tmp_path / "single"
    single.write_text("x")
    assert quick_check(single).problem is None and quick_check(single).allocated == os.lstat(single).st_blocks * 512
    tree = make_tree(tmp_path / "tree")
    assert quick_check(tree) == quick_check(tree).__class__(None, None)  # size and hard links: vetting's
    os.link(tmp_path / "single", tree / "d0" / "linked")
    assert quick_check(tree).problem is None  # a hard link is not seen without a stat ...
    problem = vet("make", {"tree": tree}).refusal
    assert problem is not None and "tree/d0/linked is a hard link to a file outside the output" in problem  # ... here
    linked_file = tmp_path / "linked-file"
    os.link(single, linked_file)
    assert "hard link" in (quick_check(linked_file).problem or "")  # a file output: its one lstat tells


@pytest.mark.parametrize(("make", "what"), [
    (lambda d: (d / "d0" / "out").symlink_to("/etc/passwd"), "an absolute symlink"),
    (lambda d: (d / "d1" / "up").symlink_to("../../../secret"), "a symlink leading outside the output"),
    (lambda d: os.mkfifo(d / "d2" / "pipe"), "a FIFO"),
])
def test_the_commit_check_refuses_links_and_specials_by_entry_type(tmp_path: Path, make, what: str) -> None:
    tree = make_tree(tmp_path / "tree")
    make(tree)
    assert what in (quick_check(tree).problem or "")


def test_vetting_gives_sizes_off_the_thread_and_wakes_the_conductor(tmp_path: Path) -> None:
    woken = threading.Event()
    vetting = Vetting(wake=woken.set)
    try:
        tree = make_tree(tmp_path / "tree", files=50)
        vetting.submit("make", {"tree": tree})
        assert vetting.pending("make") and vetting.busy()
        vetting.wait(["make", "another"])
        assert woken.wait(5)
        [verdict] = vetting.verdicts()
        assert verdict.step == "make" and verdict.refusal is None
        assert verdict.sizes["tree"] >= 50 * 512  # every file takes blocks, not one byte
        assert not vetting.pending("make") and not vetting.busy() and vetting.verdicts() == []
    finally:
        vetting.close()


def test_a_directory_commit_is_unvetted_until_its_verdict_and_never_reused_before(tmp_path: Path) -> None:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "shm" / "run", results_dir=tmp_path / "results",
                       ssd_dir=None, pv_dir=None)
    layout.create()
    store = DataStore(layout)
    staging = store.prepare_staging("make")
    make_tree(staging / "tree")
    (staging / "note").write_text("hello")
    record = store.commit("make", "key", ("tree", "note"), "run-1")
    assert not record.vetted and record.outputs["tree"] == 0 and record.outputs["note"] > 0
    assert not store.available("make", "tree", "key") and not store.available("make", "note", "key")
    store.mark_vetted("make", {"tree": 123 * 4096})
    assert store.available("make", "tree", "key") and store.size_of("make", "tree") == 123 * 4096
    staging = store.prepare_staging("file-only")
    (staging / "note").write_text("hello")
    assert store.commit("file-only", "key", ("note",), "run-1").vetted  # one lstat told everything


def test_a_directory_commit_refuses_what_its_entry_types_show(tmp_path: Path) -> None:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "shm" / "run", results_dir=tmp_path / "results",
                       ssd_dir=None, pv_dir=None)
    layout.create()
    store = DataStore(layout)
    staging = store.prepare_staging("make")
    make_tree(staging / "tree")
    (staging / "tree" / "d0" / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeOutput, match="step make's output 'tree' is refused: tree/d0/passwd is an absolute"):
        store.commit("make", "key", ("tree",), "run-1")
    assert not layout.committed_dir("make").exists()


def test_the_done_fifo_names_the_pids_that_declared(tmp_path: Path) -> None:
    watcher = ExitWatcher()
    try:
        fifo = tmp_path / "done.fifo"
        watcher.listen_for_done(str(fifo))
        assert not watcher.wait(0.01) and watcher.declared() == []
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"123\n")
        os.write(fd, b"456\n")
        os.close(fd)
        watcher.wait(1.0)  # readable at once: the write wakes the sleep
        assert watcher.declared() == [123, 456] and watcher.declared() == []
        watcher.wake()  # from another thread, say: the next wait returns at once
        watcher.wait(None)
    finally:
        watcher.close()
