"""The pieces of sources and sinks that need no server: redaction, identities, manifests, safe paths, file:// transfers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagekit_core import contract
from imagekit_core.errors import EXIT_ENVIRONMENT
from imagekit_runtime.transfer import files
from imagekit_runtime.transfer.manifest import (
    Entry,
    Manifest,
    TransferFailed,
    read_manifest,
    redact,
    safe_target,
    write_manifest,
)


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:s3cret@host/x.json", "https://…@host/x.json"),
    ("https://host/x?X-Amz-Signature=abc&X-Amz-Credential=AKIA", "https://host/x?…"),
    ("s3://bucket/key-00001.txt", "s3://bucket/key-00001.txt"),
])
def test_urls_lose_credentials_and_query_strings_before_they_are_shown(url: str, shown: str) -> None:
    assert redact(url) == shown
    error = TransferFailed("source", "page", url, "not found")
    assert str(error) == f"source page ({shown}): not found"
    assert error.exit_code == EXIT_ENVIRONMENT


def test_an_identity_changes_with_any_etag_size_or_url_and_only_then() -> None:
    def manifest(url: str = "s3://b/k/", *entries: Entry) -> Manifest:
        return Manifest("source", "n", url, "s3", True, entries or (Entry("a", 1, '"e1"'), Entry("b", 2, '"e2"')))
    base = manifest().identity()
    assert manifest("s3://b/k/", Entry("b", 2, '"e2"'), Entry("a", 1, '"e1"')).identity() == base  # order
    assert manifest("s3://b/k/", Entry("a", 1, '"e1"'), Entry("b", 2, '"e3"')).identity() != base
    assert manifest("s3://b/k/", Entry("a", 1, '"e1"'), Entry("b", 3, '"e2"')).identity() != base
    assert manifest("s3://b/other/").identity() != base


def test_a_manifest_round_trips_through_the_run_directory_unreadable_to_others(tmp_path: Path) -> None:
    written = Manifest("source", "n", "s3://b/k", "s3", False, (Entry("", 5, '"e"', "v1"),))
    write_manifest(tmp_path, written)
    assert read_manifest(tmp_path, "source.n") == written
    path = tmp_path / contract.TRANSFERS_DIR / "source.n.json"
    assert path.stat().st_mode & 0o077 == 0


def test_an_object_key_cannot_lead_outside_the_directory(tmp_path: Path) -> None:
    assert safe_target(tmp_path, "a/b.txt") == tmp_path / "a" / "b.txt"
    for bad in ("../escape", "a/../../escape", "/etc/passwd"):
        with pytest.raises(ValueError):
            safe_target(tmp_path, bad)


def test_a_file_source_is_pinned_by_size_and_mtime(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x").write_text("12")
    manifest = Manifest("source", "n", f"file://{tmp_path}/d/", "file", True)
    first = files.probe(manifest)
    assert [(e.key, e.size) for e in first] == [("sub/x", 2)]
    os.utime(tmp_path / "d" / "sub" / "x", ns=(1, 1))
    assert files.probe(manifest) != first
    with pytest.raises(TransferFailed, match=r"source n \(file://.*/nothing\): file not found"):
        files.probe(Manifest("source", "n", f"file://{tmp_path}/nothing", "file", False))


def test_a_file_sink_of_a_directory_writes_its_marker_last_and_again_on_retry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "part").write_text("abc")
    target = tmp_path / "out"
    manifest = Manifest("sink", "n", f"file://{target}", "file", False)
    assert files.upload(manifest, data) == 3
    assert (target / "sub" / "part").read_text() == "abc"
    assert (target / contract.SINK_SUCCESS_MARKER).exists()
    (data / "sub" / "part").write_text("abcd")
    assert files.upload(manifest, data) == 4
    assert (target / "sub" / "part").read_text() == "abcd"
    assert not list(target.rglob(contract.TEMPORARY_PREFIX + "*"))


def test_a_file_directory_source_is_copied_whole(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x").write_text("12")
    (tmp_path / "d" / "y").write_text("3")
    manifest = Manifest("source", "n", f"file://{tmp_path}/d/", "file", True)
    manifest = Manifest("source", "n", manifest.url, "file", True, files.probe(manifest))
    assert files.fetch(manifest, tmp_path / "staging" / "n") == 3
    assert (tmp_path / "staging" / "n" / "sub" / "x").read_text() == "12"


def test_run_placeholder_is_the_job_name_else_the_first_run_of_the_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagekit_core.contract import Event
    from imagekit_runtime.observe.journal import Journal
    from imagekit_runtime.run.transfers import run_name

    journal_path = tmp_path / "journal.jsonl"
    monkeypatch.delenv(contract.RUN_NAME, raising=False)
    assert run_name(journal_path, "run-2") == "run-2"  # no journal yet: this run
    for run_id in ("run-1", "run-2"):
        journal = Journal(journal_path, run_id)
        journal.record(Event.RUN_START)
        journal.close()
    assert run_name(journal_path, "run-2") == "run-1"  # a resume keeps the name of the run it resumes
    monkeypatch.setenv(contract.RUN_NAME, "nightly-42")
    assert run_name(journal_path, "run-2") == "nightly-42"
