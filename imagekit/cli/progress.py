"""Build and push progress on stderr: live rows on a terminal (rich), one plain line per event otherwise.

It is the sink of imagekit/build/events.py: the CLI hangs it on the engine (`backend.events`), and the build
and push paths report to it without knowing how it is shown. NO_COLOR is honoured by the console.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn

from imagekit.build.backend import Backend
from imagekit.build.events import BuildEvents, Stage
from imagekit_core.spec.quantity import human_size

SHORT_ID = 12  # hex digits of a layer's diff ID that Docker's push events name it by


def is_live(console: Console) -> bool:
    return console.is_terminal and not console.is_dumb_terminal


class ConsoleProgress(BuildEvents):
    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = is_live(console) if live is None else live
        self.names: dict[str, str] = {}  # a layer's short or full diff ID -> its name
        self.sent: dict[str, int] = {}
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}
        self._rows = Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                              console=console, disable=not self.live)

    def name_layers(self, layers: Iterable[tuple[str, str]]) -> None:
        """(diff ID, name) pairs, so push events (which name layers by a short ID) show layer names."""
        for diff_id, name in layers:
            self.names[diff_id] = name
            self.names[diff_id.removeprefix("sha256:")[:SHORT_ID]] = name

    @contextmanager
    def shown(self) -> Iterator[ConsoleProgress]:
        self._rows.start()
        try:
            yield self
        finally:
            self._rows.stop()

    def _task(self, name: str) -> TaskID:
        if name not in self._tasks:
            self._tasks[name] = self._rows.add_task(name, total=None)
        return self._tasks[name]

    def stage(self, subject: str, stage: Stage, size: int | None = None) -> None:
        name = self.names.get(subject, subject)
        if stage is Stage.PUSHED and name in self.sent:
            size = self.sent[name]
        text = f"{name}: {stage.value}" + (f" ({human_size(size)})" if size is not None else "")
        with self._lock:
            if self.live:
                self._rows.update(self._task(name), description=text, completed=size or 0, total=size or None)
            else:
                self.console.print(text)

    def transfer(self, layer: str, sent: int, total: int | None) -> None:
        name = self.names.get(layer, layer)
        with self._lock:
            first = name not in self.sent
            self.sent[name] = sent
            if self.live:
                self._rows.update(self._task(name), description=f"{name}: pushing", completed=sent, total=total)
            elif first:
                self.console.print(f"{name}: pushing" + (f" ({human_size(total)})" if total else ""))


@contextmanager
def progress_on(engine: Backend, console: Console, layers: Iterable[tuple[str, str]] = ()) -> Iterator[ConsoleProgress]:
    """Show engine's build and push events on console while the block runs."""
    shown = ConsoleProgress(console)
    shown.name_layers(layers)
    engine.events = shown
    with shown.shown():
        yield shown
