"""http:// and https:// sources: a plain GET, streamed into shm, retried with backoff.

The identity is the answer's ETag (else Last-Modified) and length, from a HEAD; a server that gives
neither cannot be pinned, so such a source is fetched again by every run. A GET whose ETag is not the
planned one fails (the object changed); its length is verified.
"""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .manifest import Entry, Manifest

CHUNK_BYTES = 1 << 20
ATTEMPTS = 4         # a GET that fails for a transient reason is tried this many times in all
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
TIMEOUT_SECONDS = 30


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
    for attempt in range(1, ATTEMPTS + 1):
        written = 0
        try:
            with _open(manifest, "GET") as answer, open(destination, "wb") as out:
                etag = answer.headers.get("ETag")
                if etag and expected.etag.startswith(('"', "W/")) and etag != expected.etag:
                    raise manifest.failed("changed since the run was planned (another ETag): run again")
                while chunk := answer.read(CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
        except (ConnectionError, TimeoutError) as exc:
            if attempt == ATTEMPTS:
                raise manifest.failed(_problem(exc)) from None
            time.sleep(0.5 * 2 ** (attempt - 1))
            continue
        if expected.size >= 0 and written != expected.size:
            raise manifest.failed(f"{written} bytes received, {expected.size} announced")
        return written
    raise AssertionError("unreachable")
