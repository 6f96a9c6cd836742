"""`imagekit run pipelines/wordfreq --local` gives the same result as a reference computed here independently."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

from conftest import EXAMPLES, imagekit

WORDFREQ = EXAMPLES / "wordfreq"


def reference_corpus(tmp_path, size: str, shard: int) -> bytes:
    """Run only the generate step's program, outside imagekit, to get the corpus it writes."""
    out = tmp_path / f"corpus-{shard}"
    env = {**os.environ, "IMAGEKIT_OUT_CORPUS": str(out), "WORDFREQ_BYTES": size, "IMAGEKIT_SHARD_INDEX": str(shard)}
    subprocess.run([sys.executable, "main.py"], cwd=WORDFREQ / "steps" / "generate", env=env, check=True)
    return out.read_bytes()


def test_wordfreq_matches_an_independent_count(tmp_path, locations):
    result = imagekit("run", WORDFREQ, *locations.args(), "--param", "WORDFREQ_BYTES=2Mi", "--shard-index", "1",
                      "--output", "json", timeout=600)
    assert result.returncode == 0, result.stderr
    corpus = reference_corpus(tmp_path, "2Mi", shard=1)
    assert len(corpus) == 2 * 1024 * 1024
    expected = collections.Counter(corpus.split())
    counts = {}
    for line in (locations.results / "counts").read_text().splitlines():
        word, count = line.split("\t")
        counts[word.encode()] = int(count)
    assert counts == dict(expected)
    report = json.loads((locations.results / "report").read_text())
    assert report["shard"] == 1
    assert report["bytes"] == len(corpus)
    assert report["lines"] == corpus.count(b"\n")
    assert report["words"] == sum(expected.values()) == report["counted_words"]
    assert report["distinct_words"] == len(expected)
    assert report["top10"][0] == [expected.most_common(1)[0][0].decode(), expected.most_common(1)[0][1]]

    summary = result.summary
    assert summary["status"] == "completed" and summary["exit_code"] == 0
    by_name = {s["name"]: s for s in summary["steps"]}
    # The conflicting pins both ran: each step asserts its numpy version and exits 0 only then.
    assert by_name["tokenize"]["exit_code"] == 0 and by_name["count"]["exit_code"] == 0
    assert by_name["tokenize"]["bytes_in"] == len(corpus)
    assert by_name["generate"]["bytes_out"] == len(corpus)
    assert summary["peak_shm_bytes"] >= len(corpus)
    # Step output reached stderr, prefixed with the step name; the summary table too.
    assert "tokenize" in result.stderr and "peak shm" in result.stderr


def test_conflicting_requirements_get_separate_environments(tmp_path, locations):
    from imagekit_core.spec import load_pipeline
    from imagekit_runtime.supervise.environments import LocalVenvs, default_cache_dir

    spec = load_pipeline(WORDFREQ)
    venvs = LocalVenvs(default_cache_dir())
    tokenize, count = spec.step("tokenize"), spec.step("count")
    assert venvs.venv_key(tokenize) != venvs.venv_key(count)
    versions = {}
    for step in (tokenize, count):
        python = venvs.ensure(step) / "bin" / "python3"
        versions[step.name] = subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"],
                                             capture_output=True, text=True, check=True).stdout.strip()
    assert versions == {"tokenize": "1.26.4", "count": "2.1.3"}


def test_second_run_of_a_complete_shard_is_a_no_op(locations):
    args = [*locations.args(), "--param", "WORDFREQ_BYTES=256Ki", "--output", "json"]
    first = imagekit("run", WORDFREQ, *args)
    assert first.returncode == 0, first.stderr
    counts_before = (locations.results / "counts").read_bytes()
    second = imagekit("run", WORDFREQ, *args)
    assert second.returncode == 0, second.stderr
    assert second.summary["status"] == "already-complete"
    assert "already complete" in second.stderr
    forced = imagekit("run", WORDFREQ, *args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert forced.summary["status"] == "completed"
    assert all(s["attempts"] == 1 for s in forced.summary["steps"])
    assert (locations.results / "counts").read_bytes() == counts_before
