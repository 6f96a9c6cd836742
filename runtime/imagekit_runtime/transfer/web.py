"""http:// and https:// sources: a plain GET, streamed into shm, retried with backoff.

The identity is the answer's ETag (else Last-Modified) and length, from a HEAD; a server that gives
neither cannot be pinned, so such a source is fetched again by every run. A GET whose ETag is not the
planned one fails (the object changed); its length is verified.
"""
from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from imagekit_core import contract

from .manifest import Entry, Manifest

CHUNK_BYTES = 1 << 20
ATTEMPTS = 4         # a GET that fails for a transient reason is tried this many times in all
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
TIMEOUT_SECONDS = 30  # each read; a server sending a byte now and then is stopped by the deadline instead
DEFAULT_DEADLINE_SECONDS = 3600.0  # one GET, all of it: $IMAGEKIT_FETCH_DEADLINE overrides


def deadline_seconds() -> float:
    text = os.environ.get(contract.FETCH_DEADLINE, "")
    try:
        value = float(text) if text else DEFAULT_DEADLINE_SECONDS
    except ValueError:
        value = DEFAULT_DEADLINE_SECONDS
    return value if 0 < value < float("inf") else DEFAULT_DEADLINE_SECONDS


def _problem(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return {404: "not found", 401: "access denied (401)", 403: "access denied (403)", 410: "gone (410)"}.get(
            exc.code, f"HTTP {exc.code}")
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    return f"{type(exc).__name__}: {exc}"


def _transient(exc: Exception) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in TRANSIENT
    return isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError))


def _open(manifest: Manifest, method: str, tolerate: tuple[int, ...] = ()) -> Any:
    """The answer to a request, after retrying transient failures with backoff; else TransferFailed.
    None for an HTTP status in tolerate."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return urllib.request.urlopen(urllib.request.Request(manifest.url, method=method),
                                          timeout=TIMEOUT_SECONDS)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code in tolerate:
                return None
            if attempt == ATTEMPTS or not _transient(exc):
                raise manifest.failed(_problem(exc)) from None
            time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def probe(manifest: Manifest) -> tuple[Entry, ...]:
    answer = _open(manifest, "HEAD", tolerate=(405, 501))  # a server that takes no HEAD: fetched every run
    if answer is None:
        return (Entry("", -1, f"unpinned-{time.time_ns()}"),)
    with answer:
        headers = answer.headers
    validator = headers.get("ETag") or headers.get("Last-Modified") or f"unpinned-{time.time_ns()}"
    length = headers.get("Content-Length")
    return (Entry("", int(length) if length and length.isdigit() else -1, validator),)


def fetch(manifest: Manifest, destination: Path) -> int:
    expected = manifest.entries[0]
    allowed = deadline_seconds()
    for attempt in range(1, ATTEMPTS + 1):
        written = 0
        announced = expected.size
        deadline = time.monotonic() + allowed
        try:
            with _open(manifest, "GET") as answer, open(destination, "wb") as out:
                etag = answer.headers.get("ETag")
                if etag and expected.etag.startswith(('"', "W/")) and etag != expected.etag:
                    raise manifest.failed("changed since the run was planned (another ETag): run again")
                length = answer.headers.get("Content-Length")
                if announced < 0 and length and length.isdigit():
                    announced = int(length)  # no HEAD to pin it: the GET's own announcement is checked
                while chunk := answer.read1(CHUNK_BYTES):  # what has arrived: the deadline is checked often
                    out.write(chunk)
                    written += len(chunk)
                    if time.monotonic() > deadline:
                        raise manifest.failed(f"not complete within {allowed:g}s ({written} bytes so far; "
                                              f"${contract.FETCH_DEADLINE} sets the deadline)")
        except (ConnectionError, TimeoutError) as exc:
            if attempt == ATTEMPTS:
                raise manifest.failed(_problem(exc)) from None
            time.sleep(0.5 * 2 ** (attempt - 1))
            continue
        if announced >= 0 and written != announced:
            raise manifest.failed(f"{written} bytes received, {announced} announced")
        return written
    raise AssertionError("unreachable")
