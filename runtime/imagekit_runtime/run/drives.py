"""What the conductor drives, as interfaces that know no implementation.

The conductor decides; these do. `StepHost` runs step processes (supervise/processes.py: supervisord, pidfds,
gates); `Echo` shows their output as it is written (observe/logs.py). main.open_conductor chooses the
implementations; tests hand the conductor fakes of both, and run its decisions without a process.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from ..supervise.client import ProcessInfo
from ..supervise.config import ProgramSpec


class StepHost(Protocol):
    """The processes of a run's steps."""

    @property
    def running(self) -> Collection[str]:
        """Steps with a process now."""

    @property
    def declared(self) -> Collection[str]:
        """Steps that declared their outputs complete whose process has not ended yet."""

    @property
    def polls(self) -> bool:
        """True when exits are found by asking (no pidfds): the conductor then wakes on a timer."""

    def start(self, programs: list[ProgramSpec]) -> None:
        """Make the steps' programs known and start whatever runs them (none of them is started yet)."""

    def spawn(self, name: str, *, gated: bool, open_gate: bool) -> None:
        """Start the step's process; a gated (warm) one waits at its gate until open_gate."""

    def open_gate(self, name: str) -> None: ...

    def declarations(self) -> list[str]:
        """Steps that declared their outputs complete (step.done()) since the last call."""

    def exits(self) -> list[tuple[str, ProcessInfo]]:
        """Processes that ended since the last call, with how they ended."""

    def ended(self, name: str) -> None:
        """The step's process is over: its gate closes and anything it left behind is killed."""

    def stop(self, names: Iterable[str], grace_seconds: float, meanwhile: Callable[[], None]) -> None:
        """Close every gate, stop these processes (killed after the grace period) and wait until they are gone."""

    def wait(self, timeout: float | None, extra_fd: int | None) -> bool:
        """Sleep until a process ends, a declaration, wake(), or the timeout; True when extra_fd is readable."""

    def wake(self) -> None:
        """End a wait() from another thread."""

    def shutdown(self) -> None:
        """Every process gone, gates closed, the host stopped."""


class Echo(Protocol):
    """Step output, echoed as it is written."""

    def timeout(self) -> float | None: ...

    def wake_fd(self) -> int | None: ...

    def after_wait(self, fd_readable: bool) -> None: ...

    def pump(self, name: str) -> None: ...

    def pump_all(self, final: bool = False) -> None: ...

    def last_lines(self, name: str, count: int) -> list[str]: ...

    def close(self) -> None: ...


EchoFactory = Callable[[list[str]], Echo]  # the steps to follow -> their echo
