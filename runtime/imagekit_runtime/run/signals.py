"""SIGTERM and SIGINT ask the run to stop: the handler only sets a flag (the conductor's), and the
exit watcher's wake-up fd (signal.set_wakeup_fd) interrupts its sleep at once."""
from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_signal_handlers(on_stop: Callable[[], None]) -> dict[int, Any]:
    """Call on_stop on SIGTERM or SIGINT; returns the handlers to restore (none when not the main thread)."""
    previous: dict[int, Any] = {}

    def handler(_signum: int, _frame: Any) -> None:
        on_stop()

    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread (embedded use)
        pass
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
