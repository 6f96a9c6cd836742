"""imagekit's cache directory on the host, for the build (wheels, deps trees, layer tarballs, contexts)
and `run --local` (step venvs) alike: $IMAGEKIT_CACHE_DIR, else $XDG_CACHE_HOME/imagekit, else
~/.cache/imagekit. Each user of it takes a sub-directory of its own."""
from __future__ import annotations

import os
from pathlib import Path

from imagekit_core.contract import CACHE_DIR


def cache_root() -> Path:
    """The cache's top directory (not created here)."""
    base = os.environ.get(CACHE_DIR) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "imagekit")
    return Path(base)
