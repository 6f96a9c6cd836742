"""Credentials never shown: URLs' user:password@, tokens and signatures in query strings, NAME=secret."""
from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagekit_core.redact import HIDDEN, RedactingFilter, looks_like_credential, redact


@pytest.mark.parametrize(("text", "hidden"), [
    ("s3://AKIA123:s3cr3t@bucket/key", "s3cr3t"),
    ("fetch https://user:pa55@host.example/x failed", "pa55"),
    ("https://ghp_token123@github.example/r.git", "ghp_token123"),
    ("GET https://b.s3.example/k?X-Amz-Signature=abcdef&X-Amz-Credential=AKIA/x", "abcdef"),
    ("http://h/x?token=t0k3n", "t0k3n"),
    ("env AWS_SECRET_ACCESS_KEY=wJalr and more", "wJalr"),
    ("'MY_API_KEY=12345'", "12345"),
])
def test_credentials_are_hidden(text: str, hidden: str) -> None:
    shown = redact(text)
    assert hidden not in shown and HIDDEN in shown


@pytest.mark.parametrize("text", ["s3://bucket/key", "https://host.example/a/b?part=1", "shm 1Gi, 2 shards",
                                  "git@github.example:org/repo.git", "user@example.com wrote"])
def test_plain_text_is_left_as_it_is(text: str) -> None:
    assert redact(text) == text


@given(user=st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True),
       password=st.from_regex(r"[A-Za-z0-9_.~-]{6,30}", fullmatch=True),
       scheme=st.sampled_from(["s3", "http", "https", "ftp"]))
def test_no_url_password_survives(user: str, password: str, scheme: str) -> None:
    assert password not in redact(f"error: {scheme}://{user}:{password}@host.example/path (fix: x)")


def test_render_env_names_and_values_that_carry_credentials() -> None:
    assert looks_like_credential("AWS_SESSION_TOKEN", "x")
    assert looks_like_credential("DB_PASSWORD", "x")
    assert looks_like_credential("DATABASE_URL", "postgres://app:hunter2@db:5432/x")
    assert looks_like_credential("S3_ENDPOINT_URL", "http://minio:9000") is None
    assert looks_like_credential("WORDFREQ_BYTES", "8Mi") is None


def test_log_records_are_redacted_before_they_are_written() -> None:
    record = logging.LogRecord("imagekit", logging.INFO, __file__, 1, "fetching %s", ("s3://k:secret@b/o",), None)
    assert RedactingFilter().filter(record)
    assert "secret" not in record.getMessage()
