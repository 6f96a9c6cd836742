"""What a build or a push reports as it goes: a sink the CLI's progress display implements.

The build path calls these at the points a user waits on (a step's requirements resolved, a layer's
tarball written, a layer loaded into the engine, bytes of a layer pushed); it never formats anything.
The default sink drops everything, so library callers and tests need not care.
"""
from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    RESOLVED = "resolved"  # a step's requirements installed into its deps tree
    WRITTEN = "written"    # a layer's tarball written (or taken from imagekit's cache)
    REUSED = "reused"      # a layer taken from a cache image in a registry (build --cache-from): not made here
    HELD = "held"          # a layer the engine held already: not sent again
    LOADED = "loaded"      # a layer loaded into the engine
    PUSHED = "pushed"      # a layer's blob is in the registry (uploaded or already there)


class BuildEvents:
    """The sink; every method is a no-op here."""

    def stage(self, subject: str, stage: Stage, size: int | None = None) -> None:
        """subject (a layer or step name) reached stage; size in bytes when known."""

    def transfer(self, layer: str, sent: int, total: int | None) -> None:
        """bytes of layer sent so far to a registry (the engine's short layer ID), of total when known."""


NO_EVENTS = BuildEvents()
