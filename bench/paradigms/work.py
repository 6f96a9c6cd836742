"""The producer's and the consumer's work, the same code in every paradigm (standard library only).

The producer writes D bytes (a fixed 1 MiB pseudo-random block, repeated) to its sink: a file
(shm, tmpfs, a volume), an HTTP request body, or an S3 PUT. The consumer reads D bytes from its
source and checksums them (zlib.crc32): a file through mmap (no copy), a socket in 1 MiB reads.
Every function returns wall-clock timestamps (time.time(): one clock for the host and every
container, they share the kernel) so the orchestrator can line up events across processes.

Runs as a script inside the bench images and as a module on the host:

    python3 work.py produce PATH SIZE           # JSON line on stdout
    python3 work.py consume PATH SIZE
    python3 work.py floor DIR SIZE              # produce to DIR, then consume the same file
    python3 work.py serve-consumer PORT         # service (b): POST /consume, body checksummed as it arrives
    python3 work.py serve-producer PORT         # service (b): GET /run?size=N&to=HOST:PORT → POSTs to the consumer
    python3 work.py s3-put ENDPOINT BUCKET KEY SIZE
    python3 work.py s3-get ENDPOINT BUCKET KEY SIZE
"""
from __future__ import annotations

import json
import mmap
import os
import sys
import time
import zlib

# HTTP and S3 live in net.py, imported only by the commands that use them: a step imports only what
# a file handoff needs, so its start-up is not charged for code it does not run.

BLOCK_SIZE = 1 << 20
_BLOCK: bytes | None = None


def block() -> bytes:
    global _BLOCK
    if _BLOCK is None:
        import random
        _BLOCK = random.Random(20240601).randbytes(BLOCK_SIZE)
    return _BLOCK


def chunks(size: int):
    """D bytes as memoryviews of the block (no copy)."""
    data = memoryview(block())
    remaining = size
    while remaining > 0:
        take = min(remaining, BLOCK_SIZE)
        yield data[:take]
        remaining -= take


def expected_crc(size: int) -> int:
    crc = 0
    for chunk in chunks(size):
        crc = zlib.crc32(chunk, crc)
    return crc


# ------------------------------------------------------------------ files
def produce_file(path: str, size: int) -> dict:
    block()
    started = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in chunks(size):
            while chunk:
                written = os.write(fd, chunk)
                chunk = chunk[written:]
    finally:
        os.close(fd)
    return {"produce_start": started, "produce_end": time.time(), "bytes": size}


def consume_file(path: str, size: int) -> dict:
    started = time.time()
    with open(path, "rb") as source:
        length = os.fstat(source.fileno()).st_size
        if length != size:
            raise SystemExit(f"consume: {path} holds {length} bytes, expected {size}")
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
            crc = zlib.crc32(view)
    return {"consume_start": started, "consume_end": time.time(), "bytes": length, "crc": crc}


def consume_stream(read_into, size: int) -> tuple[int, int]:
    """Read exactly `size` bytes with read_into(memoryview) -> n, checksumming as they come."""
    buffer = bytearray(BLOCK_SIZE)
    view = memoryview(buffer)
    crc, total = 0, 0
    while total < size:
        got = read_into(view[: min(BLOCK_SIZE, size - total)])
        if not got:
            break
        crc = zlib.crc32(view[:got], crc)
        total += got
    return total, crc


# -------------------------------------------------------------------- main
def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "produce":
        result = produce_file(args[0], int(args[1]))
    elif command == "consume":
        result = consume_file(args[0], int(args[1]))
    elif command == "floor":
        path = os.path.join(args[0], "floor.bin")
        result = produce_file(path, int(args[1]))
        result.update(consume_file(path, int(args[1])))
        os.unlink(path)
    elif command in ("serve-consumer", "serve-producer"):
        import net
        return net.serve(net.Consumer if command == "serve-consumer" else net.Producer, int(args[0]))
    elif command == "s3-put":
        import net
        result = net.s3_put(args[0], args[1], args[2], int(args[3]))
    elif command == "s3-get":
        import net
        result = net.s3_get(args[0], args[1], args[2], int(args[3]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print("BENCH " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
