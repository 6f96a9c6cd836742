"""Committed data is read-only from its commit on; a change to it afterwards (or to the journal) fails the run
with one line, and the changed bytes reach neither a consumer's commit, the results nor a checkpoint."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from conftest import REPO, imagekit, write_pipeline, write_step


def _pipeline(tmp_path: Path, second: str, *, second_inputs: tuple[str, ...] = ("raw",),
              results: tuple[str, ...] = ("raw", "out")) -> Path:
    write_step(tmp_path / "steps", "make", """
        mkdir -p "$IMAGEKIT_OUT_TREE/sub"
        echo leaf > "$IMAGEKIT_OUT_TREE/sub/leaf"
        echo original > "$IMAGEKIT_OUT_RAW"
        """, outputs=["raw", "tree"])
    write_step(tmp_path / "steps", "use", second, inputs=second_inputs, outputs=["out"])
    return write_pipeline(tmp_path, "sealed", ["make", "use"], results=list(results), checkpoint={"major": ["raw"]})


def test_committed_outputs_are_read_only_and_a_mistaken_write_fails_without_changing_them(tmp_path, tester):
    """As a normal user (root's writes pass any mode bits): writing an input is refused, and nothing changed."""
    home = Path(tempfile.mkdtemp(prefix="imagekit-sealed-", dir="/tmp"))
    os.chown(home, tester.pw_uid, tester.pw_gid)
    try:
        pipeline = _pipeline(home, """
            ls -ld "$IMAGEKIT_IN_RAW" "$IMAGEKIT_IN_TREE" "$IMAGEKIT_IN_TREE/sub" "$IMAGEKIT_IN_TREE/sub/leaf" \\
                > "$IMAGEKIT_OUT_OUT"
            echo overwritten 2>/dev/null > "$IMAGEKIT_IN_RAW" || echo refused >> "$IMAGEKIT_OUT_OUT"
            touch "$IMAGEKIT_IN_TREE/new" 2>/dev/null || echo refused >> "$IMAGEKIT_OUT_OUT"
            """, second_inputs=("raw", "tree"))
        subprocess.run(["chown", "-R", f"{tester.pw_uid}:{tester.pw_gid}", str(home)], check=True)
        result = subprocess.run(
            # The runtime alone, on Debian's python3 as in the image (root's interpreter here is root's alone).
            ["runuser", "-u", tester.pw_name, "--", "env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin",
             f"PYTHONPATH={REPO / 'runtime'}:{REPO / 'core'}", "/usr/bin/python3", "-m", "imagekit_runtime", "run", str(pipeline),
             "--results", str(home / "results")],
            cwd=home, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        listing = (home / "results" / "out").read_text().splitlines()
        # A file output and a directory output's top are read-only; entries inside keep the step's modes.
        assert [line.split()[0] for line in listing[:4]] == ["-r--r--r--", "dr-xr-xr-x", "drwxr-xr-x", "-rw-r--r--"]
        assert listing[4:] == ["refused", "refused"]
        assert (home / "results" / "raw").read_text() == "original\n"
        assert os.stat(home / "results" / "raw").st_mode & stat.S_IWUSR  # the user's copy is theirs to change
    finally:
        subprocess.run(["runuser", "-u", tester.pw_name, "--", "sh", "-c",
                        f"chmod -R u+w /dev/shm/imagekit-{tester.pw_uid} {home} 2>/dev/null; "
                        f"rm -rf /dev/shm/imagekit-{tester.pw_uid}/sealed"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_a_step_that_changes_its_input_after_commit_fails_the_run_and_commits_nothing(tmp_path, locations):
    pipeline = _pipeline(tmp_path, """
        chmod u+w "$IMAGEKIT_IN_RAW"
        echo forged > "$IMAGEKIT_IN_RAW"
        chmod a-w "$IMAGEKIT_IN_RAW"
        echo done > "$IMAGEKIT_OUT_OUT"
        """)
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1, result.stderr
    assert ("step use read data that was not as committed: 'raw' (committed by step make) changed after its "
            "commit") in result.stderr
    assert "Traceback" not in result.stderr
    data = locations.data_root("sealed")
    assert not (data / "committed" / "use").exists()  # the reader's outputs are not committed
    assert not (locations.results / "out").exists()
    # raw's copies are as made: delivered or checkpointed before the change, or refused after it (a race).
    raw = locations.results / "raw"
    assert not raw.exists() or raw.read_text() == "original\n"
    for item in [*locations.ssd.rglob("raw@*"), *locations.pv.rglob("raw@*")]:  # a checkpoint: data + manifest
        for copy in (path for path in item.rglob("*") if path.is_file() and path.name != "manifest.json"):
            assert copy.read_bytes() == b"original\n", copy


def test_a_file_changed_while_its_steps_directory_output_is_vetted_reaches_no_result(tmp_path, locations):
    """`make`'s file is sealed at commit; its large directory is vetted after `use` starts, and `use` changes
    the file first: the walk's later seal must not replace the commit's, or the change would be delivered."""
    write_step(tmp_path / "steps", "make", """
        mkdir -p "$IMAGEKIT_OUT_TREE" && cd "$IMAGEKIT_OUT_TREE" && seq 20000 | xargs touch
        echo original > "$IMAGEKIT_OUT_RAW"
        """, outputs=["raw", "tree"])
    write_step(tmp_path / "steps", "use", """
        chmod u+w "$IMAGEKIT_IN_RAW" && echo forged > "$IMAGEKIT_IN_RAW" && chmod a-w "$IMAGEKIT_IN_RAW"
        echo done > "$IMAGEKIT_OUT_OUT"
        """, inputs=["raw"], outputs=["out"])
    pipeline = write_pipeline(tmp_path, "sealed", ["make", "use"], results=["raw", "out"],
                              checkpoint={"major": ["raw"]})
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1, result.stderr
    assert "'raw' (committed by step make) changed after its commit" in result.stderr
    raw = locations.results / "raw"
    assert not raw.exists() or raw.read_text() == "original\n"
    for item in [*locations.ssd.rglob("raw@*"), *locations.pv.rglob("raw@*")]:
        for copy in (path for path in item.rglob("*") if path.is_file() and path.name != "manifest.json"):
            assert copy.read_bytes() == b"original\n", copy


def test_a_step_that_replaces_anothers_data_with_a_link_fails_the_run(tmp_path, locations):
    """`use` does not read `tree` but swaps it for a link to its own file: found at the end of the run."""
    (tmp_path / "secret").write_text("host file\n")
    pipeline = _pipeline(tmp_path, f"""
        tree=$(dirname "$IMAGEKIT_IN_RAW")/tree
        chmod -R u+w "$tree" && rm -rf "$tree" && ln -s {tmp_path}/secret "$tree"
        echo done > "$IMAGEKIT_OUT_OUT"
        """, results=("out", "tree"))
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1, result.stderr
    assert "'tree' (committed by step make)" in result.stderr and "after its commit" in result.stderr
    assert not (locations.results / "tree").is_symlink()
    leftovers = [p.name for p in locations.results.iterdir() if p.name.startswith(".tmp") or p.name.startswith(".old")]
    assert leftovers == []


def test_data_changed_in_shm_between_runs_is_not_reused(tmp_path, locations):
    """The first run stops at `use`; `tree`, committed in shm, is changed before the second: not reused from
    shm (it comes back from its checkpoint, or is made again), so the second run sees it as made."""
    marker = tmp_path / "fail-once"
    marker.touch()
    pipeline = _pipeline(tmp_path, f'test ! -e {marker} && cat "$IMAGEKIT_IN_RAW" > "$IMAGEKIT_OUT_OUT"',
                         results=("out", "tree"))
    assert imagekit("run", pipeline, *locations.args()).returncode == 1
    leaf = locations.data_root("sealed") / "committed" / "make" / "tree" / "sub" / "leaf"
    leaf.parent.chmod(0o755)
    leaf.chmod(0o644)
    leaf.write_text("forged\n")
    marker.unlink()
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 0, result.stderr
    assert "'tree' (committed by step make) in shm changed after its commit" in result.stderr
    assert "it is not reused" in result.stderr
    assert (locations.results / "tree" / "sub" / "leaf").read_text() == "leaf\n"


def test_an_event_appended_to_the_journal_by_a_step_fails_the_run(tmp_path, locations):
    forged = json.dumps({"ts": 0, "run": "x", "event": "transition", "step": "make", "to": "failed"})
    pipeline = _pipeline(tmp_path, f"""
        journal="$IMAGEKIT_RUN_DIR/journal.jsonl"
        echo '{forged}' >> "$journal" || echo refused > "$IMAGEKIT_OUT_OUT"
        chmod u+w "$journal" && echo '{forged}' >> "$journal"
        echo done >> "$IMAGEKIT_OUT_OUT"
        """, results=("out",))
    result = imagekit("run", pipeline, *locations.args())
    assert result.returncode == 1, result.stderr
    assert "was written by another process during the run" in result.stderr
    assert "only the runtime writes it" in result.stderr
