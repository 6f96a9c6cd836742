"""Which of an image's layers an engine already holds: the longest prefix it has a chain for.

Layers are imagekit's tarballs, so a layer's digest is known before the build, and a
stack of layers is named by its OCI ChainID. The index remembers, per backend, which
image held each chain imagekit loaded; a chain counts as held while that image is
still in the engine and still starts with it. Engines key their layer stores the same
way: a held layer is never sent again (the Docker archive leaves it out, containers-
storage reuses it by digest), and the build reports it as reused.
"""
from __future__ import annotations

import json
import logging
import os

from imagekit_core.cachedir import cache_root

from .assembly import chain_ids
from .backend import Backend, ImageInfo

log = logging.getLogger("imagekit.build")


class ChainIndex:
    """ChainID → IDs of the last few images whose layers start with that chain (newest first),
    per backend, in the imagekit cache: one of them may have been removed since."""

    KEEP = 4  # images per chain
    CHAINS = 4096  # chains in all: the ones recorded longest ago go first

    def __init__(self, backend: str) -> None:
        self.path = cache_root() / f"layer-chains-{backend}.json"
        try:
            stored = json.loads(self.path.read_text())
        except (OSError, ValueError):
            stored = {}
        # Anything not in this shape (an older imagekit's index) is ignored: it only costs a reload.
        self.entries: dict[str, list[str]] = {
            chain: images for chain, images in (stored.items() if isinstance(stored, dict) else ())
            if isinstance(images, list) and all(isinstance(image, str) for image in images)}

    def record(self, diff_ids: tuple[str, ...], image_id: str) -> None:
        for chain in chain_ids(diff_ids):
            known = [image for image in self.entries.pop(chain, []) if image != image_id]
            self.entries[chain] = [image_id, *known][:self.KEEP]  # (re)inserted last: newest
        for stale in list(self.entries)[:max(len(self.entries) - self.CHAINS, 0)]:
            del self.entries[stale]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.part")
        temporary.write_text(json.dumps(self.entries, indent=0))
        os.replace(temporary, self.path)


def held_layers(backend: Backend, index: ChainIndex, diff_ids: tuple[str, ...], base_layers: int,
                previous: ImageInfo | None = None) -> int:
    """How many of the layers after the first base_layers the engine holds, as a prefix.
    previous: an image known to be in the engine (the one the tag named), checked first."""
    shared = 0
    if previous is not None:
        while shared < min(len(diff_ids), len(previous.diff_ids)) and diff_ids[shared] == previous.diff_ids[shared]:
            shared += 1
    chains = chain_ids(diff_ids)
    checked: dict[str, bool] = {}
    for count in range(len(diff_ids), max(shared, base_layers), -1):
        for image in index.entries.get(chains[count - 1], []):
            if image not in checked:
                found = backend.find(image)
                checked[image] = found is not None and found.diff_ids[:count] == diff_ids[:count]
            if checked[image]:
                return count - base_layers
    return max(shared - base_layers, 0)
