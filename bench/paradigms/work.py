"""The producer's and the consumer's work, the same code in every paradigm (standard library only).

The producer writes D bytes (a fixed 1 MiB pseudo-random block, repeated): in the pod pipeline
straight into the shm file the consumer will map, elsewhere into its own memory, from where it
sends or stores them. The consumer checksums D bytes (zlib.crc32) once it holds all of them: the
mapped shm file, or its own memory after receiving or loading them.
Every function returns wall-clock timestamps (time.time(): one clock for the host and every
container, they share the kernel) so the orchestrator can line up events across processes.

Runs as a script inside the bench images and as a module on the host:

    python3 work.py produce PATH SIZE           # JSON line on stdout; into a file, as a step in shm does
    python3 work.py consume PATH SIZE           # mmap a file and checksum it
    python3 work.py store PATH SIZE             # produce in memory, then write a file (on a volume)
    python3 work.py load PATH SIZE              # read a file into memory, then checksum it
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


# Every result has four timestamps: produce_start/produce_end around the producer's work (D bytes into
# the first place its output lives), ready when the consumer holds all of its input where it reads it,
# consume_end after the checksum. The handoff is ready − produce_end, measured the same way everywhere.

# ------------------------------------------------------------------ files
def produce_file(path: str, size: int) -> dict:
    """(a) and (d): D bytes straight into a file (in shm/tmpfs: where the consumer will read them)."""
    block()
    started = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, chunks(size))
    finally:
        os.close(fd)
    return {"produce_start": started, "produce_end": time.time(), "bytes": size}


def write_all(fd: int, pieces) -> None:
    for piece in pieces:
        while piece:
            written = os.write(fd, piece)
            piece = piece[written:]


def consume_file(path: str, size: int) -> dict:
    """(a) and (d): the input is in place; map it (no copy) and checksum it."""
    started = time.time()
    with open(path, "rb") as source:
        length = os.fstat(source.fileno()).st_size
        if length != size:
            raise SystemExit(f"consume: {path} holds {length} bytes, expected {size}")
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
            ready = time.time()
            crc = zlib.crc32(view)
    return {"consume_start": started, "ready": ready, "consume_end": time.time(), "bytes": length, "crc": crc}


def mapping_cost(path: str) -> dict:
    """Checksum a fresh mapping twice: the first pass faults every page in, the second reads mapped pages.
    Their difference is what reading through a shared mapping costs beyond reading private memory."""
    with open(path, "rb") as source, mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as view:
        started = time.perf_counter()
        zlib.crc32(view)
        first = time.perf_counter() - started
        started = time.perf_counter()
        zlib.crc32(view)
        return {"first_pass": first, "mapped_pass": time.perf_counter() - started}


# ----------------------------------------------------------------- memory
def produce_memory(size: int) -> tuple[bytearray, dict]:
    """(b) and (c): D bytes into the producer's own memory; sending or storing them is the handoff."""
    block()
    started = time.time()
    data = bytearray(size)
    offset = 0
    for chunk in chunks(size):
        data[offset:offset + len(chunk)] = chunk
        offset += len(chunk)
    return data, {"produce_start": started, "produce_end": time.time(), "bytes": size}


def slices(data, size: int = BLOCK_SIZE):
    view = memoryview(data)
    for offset in range(0, len(data), size):
        yield view[offset:offset + size]


def receive(read_into, size: int) -> bytearray:
    """Exactly `size` bytes into a new buffer with read_into(memoryview) -> n."""
    data = bytearray(size)
    view = memoryview(data)
    total = 0
    while total < size:
        got = read_into(view[total:total + (8 << 20)])
        if not got:
            raise SystemExit(f"input ended after {total} of {size} bytes")
        total += got
    return data


def checksum(data, started: float, ready: float) -> dict:
    """(b) and (c): the consumer's work once its whole input is in its memory."""
    crc = zlib.crc32(data)
    return {"consume_start": started, "ready": ready, "consume_end": time.time(), "bytes": len(data), "crc": crc}


def store_file(path: str, size: int) -> dict:
    """(c), volume: produce in memory, then write the file on the store."""
    data, result = produce_memory(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, slices(data))
    finally:
        os.close(fd)
    result["stored"] = time.time()
    return result


def load_file(path: str, size: int) -> dict:
    """(c), volume: read the file from the store into memory, then checksum it."""
    started = time.time()
    with open(path, "rb", buffering=0) as source:
        data = receive(source.readinto, size)
    return checksum(data, started, time.time())


# -------------------------------------------------------------------- main
def main(argv: list[str]) -> None:
    command, args = argv[0], argv[1:]
    if command == "produce":
        result = produce_file(args[0], int(args[1]))
    elif command == "consume":
        result = consume_file(args[0], int(args[1]))
    elif command == "store":
        result = store_file(args[0], int(args[1]))
    elif command == "load":
        result = load_file(args[0], int(args[1]))
    elif command == "floor":
        path = os.path.join(args[0], "floor.bin")
        result = produce_file(path, int(args[1]))
        result.update(consume_file(path, int(args[1])))
        result.update(mapping_cost(path))
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
