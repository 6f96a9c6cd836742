"""Helper for steps written in Python: inputs and outputs by name, zero-copy reads, atomic writes.

    from imagekit_runtime import step

    text = step.read_bytes("corpus")          # an mmap: no copy out of shared memory
    tokens = step.read_array("tokens")        # numpy.memmap of a .npy file, when numpy is installed
    with step.open_output("counts", "w") as out:
        out.write(...)
    step.write_array("tokens", array)

Only the standard library is needed (numpy is optional); steps in other
languages use the IMAGEKIT_* environment variables directly.

A warm step (`warm: true`) is started before its inputs are committed: the first call that asks
for an input (input_path, read_bytes, read_array, wait_for_inputs) blocks until they are, so do
the imports and set-up first. Outputs can be opened at any time.
"""
from __future__ import annotations

import contextlib
import functools
import mmap
import os
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from imagekit_core import contract  # stdlib only, like this module: steps run it without pyyaml

# done(): how long the process waits between declaring its outputs complete and exiting. The kernel's teardown
# of a process holds a CPU and is not preempted (1 ms for an interpreter, 50 ms for one that mapped 1 GiB); done
# after the handoff, it is not in the way of the consumers the declaration wakes.
EXIT_DELAY_SECONDS = 0.005


def _contract_path(variable: str, name: str, kind: str) -> Path:
    try:
        return Path(os.environ[variable])
    except KeyError:
        raise KeyError(f"{name!r} is not an {kind} of this step (no ${variable}): "
                       f"add it to `{kind}s` in step.yaml") from None


@functools.cache
def wait_for_inputs() -> None:
    """Block until this step's inputs are committed (at once unless the step is warm); exit 1 if the run stopped."""
    gate = os.environ.get(contract.INPUTS_GATE)
    if not gate:
        return
    fd = os.open(gate, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        events = 0
        while not events:
            events = next((mask for _, mask in poller.poll()), 0)
        if not events & select.POLLIN:  # hang-up without data: the run stopped before the inputs were committed
            print(f"the run stopped before the inputs of {os.environ.get(contract.STEP, 'this step')} were committed",
                  file=sys.stderr)
            raise SystemExit(1)
    finally:
        os.close(fd)


def input_path(name: str) -> Path:
    """Path of a committed input (file or directory). Read-only: a change to it fails the run. Waits for it in a
    warm step."""
    path = _contract_path(contract.input_var(name), name, "input")
    wait_for_inputs()
    return path


def output_path(name: str) -> Path:
    """Path where this step writes an output (create a file or a directory there)."""
    return _contract_path(contract.output_var(name), name, "output")


def shard_index() -> int:
    return int(os.environ.get(contract.SHARD_INDEX, "0"))


def shard_count() -> int:
    return int(os.environ.get(contract.SHARD_COUNT, "1"))


def read_bytes(name: str) -> mmap.mmap | bytes:
    """The input's bytes, memory-mapped read-only (no copy); b"" for an empty file."""
    with open(input_path(name), "rb") as source:
        if os.fstat(source.fileno()).st_size == 0:
            return b""
        return mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)


def read_array(name: str) -> Any:
    """A .npy input as a read-only numpy.memmap (zero-copy)."""
    import numpy

    return numpy.load(input_path(name), mmap_mode="r", allow_pickle=False)


@contextlib.contextmanager
def open_output(name: str, mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Write an output through a temporary name, renamed into place when the block ends without error."""
    final = output_path(name)
    temporary = final.with_name(f".{final.name}.partial")
    with open(temporary, mode, **kwargs) as handle:
        yield handle
    os.replace(temporary, final)


def write_bytes(name: str, data: bytes) -> None:
    with open_output(name, "wb") as handle:
        handle.write(data)


def write_array(name: str, array: Any) -> None:
    """Save a numpy array as .npy at the output's path (readable with read_array)."""
    import numpy

    with open_output(name, "wb") as handle:
        numpy.save(handle, array, allow_pickle=False)


def declare_done() -> None:
    """Tell the runtime this step's outputs are complete: it commits them and opens its consumers' gates at
    once, without waiting for this process to exit. Nothing may write the outputs after this call (done()
    calls it, then exits)."""
    fifo = os.environ.get(contract.DONE_FIFO)
    if not fifo:
        return
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no runtime listening (run by hand, or the run is over): the exit tells it
        return
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def done() -> NoReturn:
    """End the step now with exit 0. Call it last, with every output written and closed: it declares the
    outputs complete (the runtime commits them and starts their consumers at once, while this process is
    still being torn down), then exits without the interpreter's teardown (atexit handlers and finalizers
    do not run). Nothing may write the outputs after done(): not this process, not one it started."""
    sys.stdout.flush()
    sys.stderr.flush()
    declare_done()
    time.sleep(EXIT_DELAY_SECONDS)  # the consumers just woken run first (see EXIT_DELAY_SECONDS)
    os._exit(0)


def output_dir(name: str) -> Path:
    """Create the output as a directory and return it."""
    path = output_path(name)
    path.mkdir(parents=True, exist_ok=True)
    return path
