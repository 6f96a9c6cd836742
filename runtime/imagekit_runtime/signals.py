"""SIGTERM and SIGINT handlers for the length of a run, and putting the previous ones back."""
from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install(on_signal: Callable[[int, Any], None]) -> dict[int, Any]:
    """Route SIGTERM and SIGINT to on_signal; returns the previous handlers (none when not the main thread)."""
    previous: dict[int, Any] = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
    except ValueError:  # not the main thread (embedded use)
        pass
    return previous


def restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
