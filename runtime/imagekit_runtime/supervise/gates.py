"""The gates of warm steps: a FIFO per step that turns readable once the step's inputs are committed.

A warm step's process is started before its inputs exist. It does its imports and set-up, then waits
at its gate (`step.input_path` and friends, `imagekit-wait` in shell, or any program polling the FIFO
named by $IMAGEKIT_INPUTS_GATE). The runtime holds the FIFO open read-write from before the step is
spawned until the step has ended, so a waiter's open never blocks, and:

- once the inputs are committed it writes contract.GATE_OPEN into the FIFO: the waiter becomes
  readable at once (a write wakes a poll in microseconds). The bytes stay in the FIFO, so every later
  wait in the same step passes at once too (a shell `read` takes one line of the 4096);
- if the run stops first it closes the FIFO without writing: a waiter sees end-of-file (hang-up) and
  exits non-zero; supervisord stops the step anyway.

Committed data is moved into place by one rename, so a step that ignored its gate would find no
input at all, never a partial one.
"""
from __future__ import annotations

import os
from pathlib import Path

from imagekit_core import contract

WAIT_SCRIPT = f"""#!/bin/sh
# {contract.WAIT_PROGRAM}: block until this step's inputs are committed (warm steps); written by the imagekit runtime.
# Exits 0 at once for a step that is not warm (its inputs were committed before it started), 1 if the run stopped.
[ -n "${contract.INPUTS_GATE}" ] || exit 0
IFS= read -r _ < "${contract.INPUTS_GATE}" && exit 0
echo "{contract.WAIT_PROGRAM}: the run stopped before the inputs of ${contract.STEP} were committed" >&2
exit 1
"""


def gates_dir(run_dir: Path) -> Path:
    return run_dir / contract.GATES_DIR


def bin_dir(run_dir: Path) -> Path:
    """Where imagekit-wait is: on every step's PATH."""
    return run_dir / contract.BIN_DIR


def install_wait_program(bin_dir: Path) -> Path:
    """Write imagekit-wait into bin_dir (the run's, put on every step's PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / contract.WAIT_PROGRAM
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(WAIT_SCRIPT)
    temporary.chmod(0o755)
    os.replace(temporary, path)
    return path


class Gates:
    """The FIFOs of the warm steps of one run, in <run>/gates/<step>."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fds: dict[str, int] = {}
        self._released: set[str] = set()

    def path(self, step: str) -> Path:
        return self.directory / step

    def prepare(self, step: str) -> Path:
        """A fresh, closed gate for the step (a stale FIFO of an earlier run is replaced); call before spawning."""
        self.close(step)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(step)
        path.unlink(missing_ok=True)
        os.mkfifo(path, 0o600)
        self._fds[step] = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        return path

    def release(self, step: str) -> None:
        """The step's inputs are committed: wake its waiter now and let every later wait pass."""
        fd = self._fds.get(step)
        if fd is None or step in self._released:
            return
        os.write(fd, contract.GATE_OPEN)
        self._released.add(step)

    def released(self, step: str) -> bool:
        return step in self._released

    def close(self, step: str) -> None:
        """The step ended (or the run stops): a waiter still at a closed gate sees end-of-file."""
        self._released.discard(step)
        fd = self._fds.pop(step, None)
        if fd is not None:
            os.close(fd)
            self.path(step).unlink(missing_ok=True)

    def close_all(self) -> None:
        for step in list(self._fds):
            self.close(step)
