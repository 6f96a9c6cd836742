"""A step cannot smuggle anything out of its sandbox, and leaves no process behind.

The walk's rules are checked in-process on trees built here; a few real runs show
that a refused output fails the step with one line and reaches no SSD, PV or
results directory, that a link kept inside its output survives checkpoints and
restore, and that a process a step leaves running is killed when the step ends.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tarfile
import uuid
from pathlib import Path

import pytest

from conftest import imagekit, started_steps, write_pipeline, write_step
from imagekit_core import contract
from imagekit_runtime.checkpoint.filehash import walk_files as _walk_files
from imagekit_runtime.data.results import copy_item
from imagekit_runtime.data.sandbox import UnsafeOutput, check_output, find_escape

PASSWD_LINE = Path("/etc/passwd").read_text().splitlines()[0]


# ------------------------------------------------------------------ the walk, in-process
@pytest.fixture
def output(tmp_path: Path) -> Path:
    """An output directory inside a staging directory, with a sibling output and a file outside both."""
    staging = tmp_path / "staging" / "step"
    (staging / "out" / "sub").mkdir(parents=True)
    (staging / "out" / "sub" / "a.txt").write_text("a")
    (staging / "other").write_text("another output")
    (tmp_path / "secret").write_text("outside")
    return staging / "out"


def refusal(path: Path) -> str:
    """find_escape's reason for refusing path; fails the test when it finds none."""
    problem = find_escape(path)
    assert problem is not None, f"{path} was not refused"
    return problem


def test_plain_files_and_directories_pass(output):
    assert find_escape(output) is None
    assert find_escape(output / "sub" / "a.txt") is None


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../secret", "../../other", "../sub/../../../other"])
def test_a_symlink_leading_out_of_the_output_is_refused(output, target):
    (output / "sub" / "link").symlink_to(target)
    problem = find_escape(output)
    assert problem is not None and "out/sub/link" in problem and target in problem


def test_relative_symlinks_resolving_inside_the_output_are_kept(output):
    (output / "sub" / "alias").symlink_to("a.txt")
    (output / "up").symlink_to("sub")  # a link to a directory, not followed by the walk
    (output / "sub" / "dangling").symlink_to("../not-yet")
    assert find_escape(output) is None


def test_a_link_that_escapes_through_another_link_is_refused(output):
    (output / "sub" / "hop").symlink_to("../..")  # the staging directory: outside the output
    (output / "through").symlink_to("sub/hop/other")
    assert "outside the output" in refusal(output)


def test_an_output_that_is_itself_a_symlink_is_refused(output):
    link = output.parent / "alias"
    link.symlink_to("out")
    assert "is a symlink" in refusal(link)


def test_a_hard_link_from_outside_is_refused_one_within_is_kept(output, tmp_path):
    os.link(output / "sub" / "a.txt", output / "b.txt")  # both names inside the output
    assert find_escape(output) is None
    os.link(tmp_path / "secret", output / "sub" / "secret")
    problem = refusal(output)
    assert "out/sub/secret is a hard link to a file outside the output (2 links, 1 inside)" in problem
    single = output.parent / "single"
    os.link(tmp_path / "secret", single)
    assert "hard link" in refusal(single)


def test_fifos_and_sockets_are_refused(output):
    os.mkfifo(output / "sub" / "pipe")
    assert find_escape(output) == "out/sub/pipe is a FIFO"
    os.unlink(output / "sub" / "pipe")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(output / "sock"))
        assert find_escape(output) == "out/sock is a socket"


def test_a_device_is_refused(tmp_path):
    device = tmp_path / "null"
    try:
        os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD")
    assert find_escape(device) == "null is a character device"


def test_check_output_names_the_step_the_output_and_the_path(output):
    (output / "leak").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeOutput) as refused:
        check_output("grab", "out", output)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("step grab's output 'out' is refused: out/leak is an absolute symlink (to /etc/passwd)")


def test_the_results_copy_never_reads_through_a_link(output, tmp_path):
    (output / "leak").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeOutput):
        copy_item(output, tmp_path / "delivered")
    assert not (tmp_path / "delivered").exists()
    (output / "leak").unlink()
    (output / "alias").symlink_to("sub/a.txt")
    copy_item(output, tmp_path / "delivered")
    assert os.readlink(tmp_path / "delivered" / "alias") == "sub/a.txt"


def test_the_checkpoint_walk_lists_links_to_directories(output):
    (output / "up").symlink_to("sub")
    assert [p.relative_to(output).as_posix() for p in _walk_files(output)] == ["up", "sub/a.txt"]


# ------------------------------------------------------------------ real runs
def everything_under(*roots: Path) -> str:
    """The text of every regular file under roots (links not followed)."""
    texts = []
    for root in roots:
        for directory, _dirs, files in os.walk(root):
            for name in files:
                path = Path(directory) / name
                if path.is_file() and not path.is_symlink():
                    texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


@pytest.mark.parametrize(("name", "script", "what"), [
    ("symlink", 'ln -s /etc/passwd "$IMAGEKIT_OUT_LOOT"', "loot is a symlink (to /etc/passwd)"),
    ("nested", 'mkdir "$IMAGEKIT_OUT_LOOT" && ln -s /etc/passwd "$IMAGEKIT_OUT_LOOT/passwd"',
     "loot/passwd is an absolute symlink (to /etc/passwd)"),
    ("hardlink", 'echo "$SECRET" > "$IMAGEKIT_RUN_DIR/secret" && mkdir "$IMAGEKIT_OUT_LOOT" '
                 '&& ln "$IMAGEKIT_RUN_DIR/secret" "$IMAGEKIT_OUT_LOOT/secret"',
     "loot/secret is a hard link to a file outside the output"),
    ("fifo", 'mkdir "$IMAGEKIT_OUT_LOOT" && mkfifo "$IMAGEKIT_OUT_LOOT/pipe"', "loot/pipe is a FIFO"),
])
def test_an_escaping_output_fails_the_step_and_reaches_no_checkpoint_or_result(tmp_path, locations, name, script,
                                                                                 what):
    write_step(tmp_path / "steps", "grab", f'echo fine > "$IMAGEKIT_OUT_FINE"\n{script}\n', outputs=["fine", "loot"])
    pipeline = write_pipeline(tmp_path, "grab", ["grab"], results=["loot", "fine"],
                              checkpoint={"major": ["loot", "fine"]}, params={"SECRET": PASSWD_LINE})
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "step grab failed" in errors[0] and f"output 'loot' is refused: {what}" in errors[0]
    assert not (locations.data_root("grab") / "committed" / "grab").exists()
    stored = [p for root in (locations.ssd, locations.pv, locations.results) if root.exists() for p in root.rglob("*")
              if not p.is_dir() and ".imagekit" not in p.parts]
    assert stored == []  # not even the harmless sibling output: the step failed as a whole
    assert PASSWD_LINE not in everything_under(locations.ssd, locations.pv, locations.results)


def test_a_hard_link_is_still_refused_when_its_consumer_is_warm(tmp_path, locations):
    # The commit hands the directory over at once (no stat per file); the hard-link check comes after, and its
    # refusal fails the producer, stops the consumer (which may already be past its gate) and trusts nothing.
    write_step(tmp_path / "steps", "grab", 'echo "$SECRET" > "$IMAGEKIT_RUN_DIR/secret" && mkdir "$IMAGEKIT_OUT_LOOT" '
               '&& ln "$IMAGEKIT_RUN_DIR/secret" "$IMAGEKIT_OUT_LOOT/secret"', outputs=["loot"])
    write_step(tmp_path / "steps", "copy", 'imagekit-wait || exit 1; cat "$IMAGEKIT_IN_LOOT/secret" > "$IMAGEKIT_OUT_COPY"',
               inputs=["loot"], outputs=["copy"], extra={"warm": True})
    pipeline = write_pipeline(tmp_path, "grab", ["grab", "copy"], results=["loot", "copy"],
                              checkpoint={"major": ["loot", "copy"]}, params={"SECRET": PASSWD_LINE})
    result = imagekit("run", pipeline, *locations.args(), "--output", "json")
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "step grab failed" in errors[0]
    assert "output 'loot' is refused: loot/secret is a hard link to a file outside the output" in errors[0]
    steps = {s["name"]: s["state"] for s in result.summary["steps"]}
    assert steps == {"grab": "failed", "copy": "stopped"}  # the consumer counts as not run
    for step in ("grab", "copy"):
        assert not (locations.data_root("grab") / "committed" / step).exists()
    stored = [p for root in (locations.ssd, locations.pv, locations.results) if root.exists() for p in root.rglob("*")
              if not p.is_dir() and ".imagekit" not in p.parts and "logs" not in p.parts]  # step logs are kept
    assert stored == []
    assert PASSWD_LINE not in everything_under(locations.ssd, locations.pv, locations.results)
    # A resume never reuses the refused commit: the step runs (and is refused) again.
    again = imagekit("run", pipeline, *locations.args())
    assert again.returncode == 1 and "is a hard link to a file outside the output" in again.stderr


def test_a_link_inside_its_output_is_committed_checkpointed_and_restored(tmp_path, locations):
    write_step(tmp_path / "steps", "make", 'mkdir -p "$IMAGEKIT_OUT_TREE/sub" && echo hi > "$IMAGEKIT_OUT_TREE/sub/f" '
               '&& ln -s sub/f "$IMAGEKIT_OUT_TREE/alias" && ln -s sub "$IMAGEKIT_OUT_TREE/dir"', outputs=["tree"])
    write_step(tmp_path / "steps", "use", 'cat "$IMAGEKIT_IN_TREE/alias" "$IMAGEKIT_IN_TREE/dir/f" > "$IMAGEKIT_OUT_TWICE"',
               inputs=["tree"], outputs=["twice"])
    pipeline = write_pipeline(tmp_path, "links", ["make", "use"], results=["tree", "twice"],
                              checkpoint={"major": ["tree"]})
    first = imagekit("run", pipeline, *locations.args())
    assert first.returncode == 0, first.stderr
    assert (locations.results / "twice").read_text() == "hi\nhi\n"
    assert os.readlink(locations.results / "tree" / "alias") == "sub/f"
    [checkpoint] = (locations.pv / "links" / "shard-0").glob("tree@*")
    with tarfile.open(checkpoint / "data.tar") as packed:  # links travel in the pack, as links
        assert packed.getmember("dir").issym() and packed.getmember("dir").linkname == "sub"
    # Node lost: shm and SSD gone; the PV checkpoint (links and all) verifies and is restored.
    shutil.rmtree(locations.data_root("links"))
    shutil.rmtree(locations.ssd)
    (tmp_path / "steps" / "use" / "run.sh").write_text(
        'cat "$IMAGEKIT_IN_TREE/dir/f" "$IMAGEKIT_IN_TREE/alias" "$IMAGEKIT_IN_TREE/alias" > "$IMAGEKIT_OUT_TWICE"\n')
    again = imagekit("run", pipeline, *locations.args())
    assert again.returncode == 0, again.stderr
    assert "not trusted" not in again.stderr
    assert (locations.results / "twice").read_text() == "hi\nhi\nhi\n"


def killed_before_vetting(tmp_path: Path, locations, make: str) -> tuple[Path, Path]:
    """A run that committed `make`'s directory output `tree`, and whose runtime died before the directory's
    per-file check: the consumer fails (so the run ends with `tree` still in shm), then the commit record is
    put back to `vetted: false`, as the kill leaves it. The pipeline, and make's committed `tree`."""
    ok = tmp_path / "consumer-may-run"
    write_step(tmp_path / "steps", "make", make, outputs=["tree"])
    write_step(tmp_path / "steps", "use", f'test -f {ok} || exit 3; cat "$IMAGEKIT_IN_TREE/f" > "$IMAGEKIT_OUT_COPY"',
               inputs=["tree"], outputs=["copy"])
    pipeline = write_pipeline(tmp_path, "vet", ["make", "use"], results=["copy"])
    assert imagekit("run", pipeline, *locations.args()).returncode == 1
    committed = locations.data_root("vet") / "committed" / "make"
    record = committed / contract.COMMIT_RECORD
    record.write_text(json.dumps({**json.loads(record.read_text()), "vetted": False}))
    for checkpoints in (locations.ssd, locations.pv):  # an unvetted commit is never checkpointed
        shutil.rmtree(checkpoints, ignore_errors=True)
    ok.touch()
    return pipeline, committed / "tree"


def test_a_commit_left_unvetted_by_a_killed_run_is_checked_and_reused(tmp_path, locations):
    pipeline, _ = killed_before_vetting(tmp_path, locations, 'mkdir "$IMAGEKIT_OUT_TREE" && echo hi > "$IMAGEKIT_OUT_TREE/f"')
    again = imagekit("run", pipeline, *locations.args())
    assert again.returncode == 0, again.stderr
    assert started_steps(locations.journal("vet")) == ["use"]  # make's commit checked, not made again
    assert (locations.results / "copy").read_text() == "hi\n"


def test_a_commit_left_unvetted_that_fails_its_check_is_made_again(tmp_path, locations):
    pipeline, tree = killed_before_vetting(tmp_path, locations, 'mkdir "$IMAGEKIT_OUT_TREE" && echo hi > "$IMAGEKIT_OUT_TREE/f"')
    outside = locations.data_root("vet") / "outside"  # in shm (a hard link stays on one file system)
    outside.write_text(PASSWD_LINE)
    os.link(outside, tree / "loot")  # what the vetting would have refused, had the run lived
    again = imagekit("run", pipeline, *locations.args())
    assert again.returncode == 0, again.stderr
    assert sorted(started_steps(locations.journal("vet"))) == ["make", "use"]  # refused at the resume: made again
    assert PASSWD_LINE not in everything_under(locations.results)


def processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if token.encode() in cmdline.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("exit_code", [0, 4])
def test_processes_a_step_leaves_behind_are_killed_when_it_ends(tmp_path, locations, exit_code):
    token = f"leftover-{uuid.uuid4().hex[:12]}"
    write_step(tmp_path / "steps", "bg", f"""
        sh -c 'sleep 1000; : {token}' &
        echo made > "$IMAGEKIT_OUT_MADE"
        exit {exit_code}
        """, outputs=["made"])
    pipeline = write_pipeline(tmp_path, "bg", ["bg"])
    try:
        result = imagekit("run", pipeline, *locations.args())
        assert result.returncode == (0 if exit_code == 0 else 1), result.stderr
        assert processes_with(token) == []
    finally:
        for pid in processes_with(token):
            os.kill(pid, 9)
