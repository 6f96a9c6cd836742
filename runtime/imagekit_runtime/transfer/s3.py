"""S3 through boto3: identify a source (HEAD or listing), fetch it into shm, check a sink's bucket, upload.

Configured the standard way (boto3 reads it): AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, AWS_PROFILE, ~/.aws. Transient errors are retried by botocore (standard retry mode, with
backoff); a body cut off mid-stream is fetched again here. Only this module imports boto3.

Fetching: the object is cut into ranges, fetched by parallel ranged GETs, each written with pwrite at
its offset as it streams (memory: one chunk per thread). Every GET carries If-Match with the ETag the
plan saw (or the VersionId), so the bytes are those of the object the source's key names; each range's
length and the file's size are verified.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from imagekit_core.contract import SINK_SUCCESS_MARKER

from .manifest import Entry, Manifest, redact, safe_target

MiB = 1 << 20
PART_BYTES = 16 * MiB        # one ranged GET
CHUNK_BYTES = 1 * MiB        # read and written at a time by each thread
THREADS = 10                 # parallel GETs (boto3's own default max_concurrency)
MULTIPART_BYTES = 64 * MiB   # uploads above this are multipart
STREAM_ATTEMPTS = 4          # a range whose body is cut off is fetched again, this many times in all
STREAM_ERRORS = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, ConnectionClosedError)
NOT_FOUND = ("NoSuchKey", "404", "NotFound")
DENIED = ("AccessDenied", "403", "Forbidden", "AllAccessDisabled")
BAD_CREDENTIALS = ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")


def client() -> Any:
    """An S3 client from the standard configuration; path-style addressing when an endpoint is given."""
    custom_endpoint = bool(os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"))
    config = Config(retries={"mode": os.environ.get("AWS_RETRY_MODE", "standard"),
                             "total_max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))},
                    max_pool_connections=THREADS * 2, connect_timeout=10, read_timeout=60,
                    s3={"addressing_style": "path"} if custom_endpoint else None)
    return boto3.session.Session().client("s3", config=config)


def split(url: str) -> tuple[str, str]:
    """s3://bucket/key -> (bucket, key)."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


def problem_of(exc: Exception) -> str:
    """What went wrong, in a few words a user can act on (never the request's headers or credentials)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in NOT_FOUND:
            return "object not found"
        if code == "NoSuchBucket":
            return "bucket not found"
        if code in DENIED:
            return "access denied (check the credentials' permissions)"
        if code in BAD_CREDENTIALS:
            return f"credentials refused ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        if code in ("PreconditionFailed", "412"):
            return "the object changed while it was fetched (its ETag is not the planned one): run again"
        return f"{code}: {error.get('Message', '')}".strip(": ")
    if isinstance(exc, NoCredentialsError):
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot connect to the endpoint {redact(str(exc.kwargs.get('endpoint_url', '')))} (is it up? AWS_ENDPOINT_URL)"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def reported(manifest: Manifest) -> Iterator[None]:
    """botocore's errors as one TransferFailed line naming the source or sink and its URL."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise manifest.failed(problem_of(exc)) from None


def probe(manifest: Manifest, s3: Any) -> tuple[Entry, ...]:
    """A source's objects (one, or every object under the prefix) with their ETags; a sink's bucket exists."""
    bucket, key = split(manifest.url)
    with reported(manifest):
        if manifest.kind == "sink":
            _bucket_exists(s3, bucket, manifest)
            return ()
        if not manifest.prefix:
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if problem_of(exc) == "object not found":
                    _bucket_exists(s3, bucket, manifest)  # a missing bucket says so
                raise
            return (Entry("", int(head["ContentLength"]), head["ETag"], head.get("VersionId") or ""),)
        entries = [Entry(item["Key"][len(key):], int(item["Size"]), item["ETag"])
                   for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                   for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    if not entries:
        raise manifest.failed("no objects under this prefix")
    return tuple(entries)


def _bucket_exists(s3: Any, bucket: str, manifest: Manifest) -> None:
    """HEAD on the bucket: a 404 there means the bucket (not an object) is missing."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if problem_of(exc) == "object not found":
            raise manifest.failed("bucket not found") from None
        raise


@dataclass(frozen=True)
class Part:
    descriptor: int
    key: str
    entry: Entry
    start: int
    end: int  # inclusive


def fetch(manifest: Manifest, destination: Path) -> int:
    """The source's objects into destination (a file, or a directory for a prefix); the bytes fetched."""
    bucket, key = split(manifest.url)
    s3 = client()
    targets = [(key + e.key, e, safe_target(destination, e.key)) for e in manifest.entries] if manifest.prefix \
        else [(key, manifest.entries[0], destination)]
    if manifest.prefix:
        destination.mkdir(parents=True, exist_ok=True)
    descriptors: list[int] = []
    parts: list[Part] = []
    try:
        for object_key, entry, path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            descriptors.append(descriptor)
            os.ftruncate(descriptor, entry.size)
            parts += [Part(descriptor, object_key, entry, start, min(start + PART_BYTES, entry.size) - 1)
                      for start in range(0, entry.size, PART_BYTES)]
        with reported(manifest), ThreadPoolExecutor(THREADS) as pool:
            for _ in pool.map(lambda part: _get_part(s3, bucket, part, manifest), parts):
                pass
        for descriptor, (_, entry, path) in zip(descriptors, targets, strict=True):
            if os.fstat(descriptor).st_size != entry.size:
                raise manifest.failed(f"{path.name}: {os.fstat(descriptor).st_size} bytes, the object has {entry.size}")
    finally:
        for descriptor in descriptors:
            os.close(descriptor)
    return manifest.size


def _get_part(s3: Any, bucket: str, part: Part, manifest: Manifest) -> None:
    pin = {"VersionId": part.entry.version} if part.entry.version else {"IfMatch": part.entry.etag}
    for attempt in range(1, STREAM_ATTEMPTS + 1):
        answer = s3.get_object(Bucket=bucket, Key=part.key, Range=f"bytes={part.start}-{part.end}", **pin)
        position = part.start
        try:
            body = answer["Body"]
            while chunk := body.read(CHUNK_BYTES):
                os.pwrite(part.descriptor, chunk, position)
                position += len(chunk)
        except STREAM_ERRORS:
            if attempt == STREAM_ATTEMPTS:
                raise
            time.sleep(0.2 * 2 ** attempt)
            continue
        if position != part.end + 1:
            raise manifest.failed(f"{part.key}: range {part.start}-{part.end} ended at {position}")
        return


def upload(manifest: Manifest, source: Path) -> int:
    """A committed data item to the sink's URL; a directory's SINK_SUCCESS_MARKER last. The bytes sent.
    A single object appears whole or not at all (PUT, or multipart completed at the end)."""
    bucket, key = split(manifest.url)
    s3 = client()
    config = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES // 4,
                            max_concurrency=THREADS)
    with reported(manifest):
        if not source.is_dir():
            s3.upload_file(str(source), bucket, key + manifest.name if key.endswith("/") else key, Config=config)
            return source.stat().st_size
        prefix = key if key.endswith("/") or not key else key + "/"
        s3.delete_object(Bucket=bucket, Key=prefix + SINK_SUCCESS_MARKER)  # not complete while it is rewritten
        files = [path for path in sorted(source.rglob("*")) if path.is_file()]
        with create_transfer_manager(s3, config) as manager:
            futures = [manager.upload(str(path), bucket, prefix + path.relative_to(source).as_posix())
                       for path in files]
            for future in futures:
                future.result()
        s3.put_object(Bucket=bucket, Key=prefix + SINK_SUCCESS_MARKER, Body=b"")
    return sum(path.stat().st_size for path in files)
