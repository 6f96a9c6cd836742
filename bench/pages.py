"""docs/bench/<page>.md written by the benches that measure it.

A bench prints its results through a `Measured` (one per part of a page: a bench that measures several
things, or runs only some of them with --only, writes each part's block alone). At the end of a run,
unless the bench is given --no-write, `write()` replaces that part's block on the page, between two
markers, with what was printed, the command that printed it, when, and on what machine. The prose around
the blocks (what the numbers mean, caveats) is written by hand and kept; it should link to the numbers,
not repeat them. A part without a block yet is appended to its page.
"""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "bench"


def command_line() -> str:
    """How this bench was run, as a user would type it from the checkout."""
    return shlex.join(["python3", f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def machine() -> str:
    cpus = len(os.sched_getaffinity(0))
    return f"{cpus} CPUs, Linux {platform.release()}, Python {platform.python_version()}"


class Measured:
    """The printed results of one part of a page, printed as they come and written to the page at the end."""

    def __init__(self, page: str, part: str) -> None:
        self.path = DOCS / f"{page}.md"
        self.part = part
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.extend(text.splitlines() or [""])

    def markers(self) -> tuple[str, str]:
        bench = Path(sys.argv[0]).name
        return (f"<!-- measured: {self.part}, written by bench/{bench}; run the bench, do not edit this block -->",
                f"<!-- end measured: {self.part} -->")

    def block(self) -> str:
        begin, end = self.markers()
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        body = "\n".join(self.lines).rstrip("\n")
        return (f"{begin}\nMeasured {when} on {machine()}:\n\n```sh\n{command_line()}\n```\n\n"
                f"```text\n{body}\n```\n{end}")

    def write(self) -> None:
        if not self.lines:
            return
        text = self.path.read_text() if self.path.exists() else f"# {self.path.stem}\n"
        begin, end = self.markers()
        start, stop = text.find(begin), text.find(end)
        if start >= 0 and stop > start:
            text = text[:start] + self.block() + text[stop + len(end):]
        else:
            text = text.rstrip("\n") + "\n\n" + self.block() + "\n"
        self.path.write_text(text)
        print(f"wrote {self.path.relative_to(DOCS.parents[1])} ({self.part})", file=sys.stderr)
