"""The pieces of a fast handoff, in-process: the commit's one lstat per output, vetting off the critical path,
the unvetted record, and the done FIFO."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from imagekit_runtime.data.datastore import DataStore
from imagekit_runtime.data.sandbox import QuickCheck, UnsafeOutput, quick_check
from imagekit_runtime.data.vetting import Job, Vetting, vet
from imagekit_runtime.layout import RunLayout
from imagekit_runtime.supervise.exit_watch import ExitWatcher


def make_tree(root: Path, files: int = 30) -> Path:
    for number in range(files):
        directory = root / f"d{number // 10}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{number}").write_text("x")
    return root


def test_the_commit_check_settles_a_file_with_one_lstat_and_leaves_a_directory_to_vetting(tmp_path: Path) -> None:
    single = tmp_path / "single"
    single.write_text("x")
    assert quick_check(single).problem is None and quick_check(single).allocated == os.lstat(single).st_blocks * 512
    linked_file = tmp_path / "linked-file"
    os.link(single, linked_file)
    assert "hard link" in (quick_check(linked_file).problem or "")  # a file output: its one lstat tells
    (tmp_path / "alias").symlink_to("single")
    assert "is a symlink (to single), not a file or directory" in (quick_check(tmp_path / "alias").problem or "")
    tree = make_tree(tmp_path / "tree")
    os.link(single, tree / "d0" / "linked")
    assert quick_check(tree) == QuickCheck(None, None)  # nothing inside is looked at: vetting's walk is
    problem = vet(Job("make", {"tree": tree})).refusal
    assert problem is not None and "tree/d0/linked is a hard link to a file outside the output" in problem


@pytest.mark.parametrize(("make", "what"), [
    (lambda d: (d / "d0" / "out").symlink_to("/etc/passwd"), "an absolute symlink"),
    (lambda d: (d / "d1" / "up").symlink_to("../../../secret"), "a symlink leading outside the output"),
    (lambda d: os.mkfifo(d / "d2" / "pipe"), "a FIFO"),
])
def test_vetting_refuses_links_and_specials_inside_a_directory(tmp_path: Path, make, what: str) -> None:
    tree = make_tree(tmp_path / "tree")
    make(tree)
    verdict = vet(Job("make", {"tree": tree}))
    assert verdict.refusal is not None and what in verdict.refusal and "step make's output 'tree'" in verdict.refusal


def test_vetting_gives_sizes_off_the_thread_and_wakes_the_conductor(tmp_path: Path) -> None:
    woken = threading.Event()
    vetting = Vetting(wake=woken.set)
    try:
        tree = make_tree(tmp_path / "tree", files=50)
        vetting.submit(Job("make", {"tree": tree}))
        assert vetting.pending("make") and vetting.busy()
        vetting.wait(["make", "another"])
        assert woken.wait(5)
        [verdict] = vetting.verdicts()
        assert verdict.step == "make" and verdict.refusal is None
        assert verdict.sizes["tree"] >= 50 * 512  # every file takes blocks, not one byte
        assert set(verdict.seals) == {"tree"}  # its seal, taken off the conductor's thread
        assert not vetting.pending("make") and not vetting.busy() and vetting.verdicts() == []
    finally:
        vetting.close()


def _store(tmp_path: Path) -> tuple[RunLayout, DataStore]:
    layout = RunLayout(shm_dir=tmp_path / "shm", run_dir=tmp_path / "shm" / "run", results_dir=tmp_path / "results",
                       ssd_dir=None, pv_dir=None)
    layout.create()
    return layout, DataStore(layout)


def test_a_directory_commit_is_unvetted_until_its_verdict_and_never_reused_before(tmp_path: Path) -> None:
    layout, store = _store(tmp_path)
    staging = store.prepare_staging("make")
    make_tree(staging / "tree")
    (staging / "note").write_text("hello")
    record = store.commit("make", "key", ("tree", "note"), "run-1")
    assert not record.vetted and record.outputs["tree"] == 0 and record.outputs["note"] > 0
    assert not store.available("make", "tree", "key") and not store.available("make", "note", "key")
    assert "note" in record.seals and "tree" not in record.seals  # a file is sealed at once, a directory by vetting
    # The walk seals every output, after the consumers started: the file's seal taken at commit is kept.
    store.mark_vetted("make", {"tree": 123 * 4096}, {"tree": "a-seal", "note": "taken-after-a-consumer-wrote-it"})
    assert store.available("make", "tree", "key") and store.size_of("make", "tree") == 123 * 4096
    vetted = store.read_record("make")
    assert vetted is not None and vetted.seals == {"note": record.seals["note"], "tree": "a-seal"}
    staging = store.prepare_staging("file-only")
    (staging / "note").write_text("hello")
    assert store.commit("file-only", "key", ("note",), "run-1").vetted  # one lstat told everything


def test_a_commit_refuses_an_output_that_is_a_link_and_commits_nothing(tmp_path: Path) -> None:
    layout, store = _store(tmp_path)
    staging = store.prepare_staging("make")
    make_tree(staging / "tree")
    (staging / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeOutput, match=r"step make's output 'passwd' is refused: passwd is a symlink \(to /etc/passwd\)"):
        store.commit("make", "key", ("tree", "passwd"), "run-1")
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
