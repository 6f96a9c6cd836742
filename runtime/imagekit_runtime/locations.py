"""Where a run keeps shared memory and checkpoints when no flag, variable or pipeline field says.

Two sets of defaults, chosen by where the runtime itself is installed:

- **in the image** (this package at `/opt/imagekit/runtime`): the pod's paths, which the deploy
  manifests mount: `/dev/shm/imagekit`, `/var/lib/imagekit/ssd`, `/var/lib/imagekit/pv`.
- **on a host** (`imagekit run --local`, any user): per-user paths, so that one user's run never
  blocks another's and no run needs root: `/dev/shm/imagekit-<uid>` for shared memory, and
  `$XDG_STATE_HOME/imagekit/{ssd,pv}` (default `~/.local/state/imagekit/...`) for checkpoints.

A pipeline that names its own `checkpoint.ssd`/`checkpoint.pv` keeps them everywhere; one that
leaves the image defaults gets the host's on a host.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import imagekit_core
from imagekit_core import contract

PACKAGE_DIR = Path(__file__).resolve().parent
CORE_DIR = Path(imagekit_core.__file__).resolve().parent  # the vocabulary it ships with (step.py uses it)


@dataclass(frozen=True)
class Locations:
    shm_base: Path  # <shm_base>/<pipeline>/shard-<n>
    ssd: Path
    pv: Path


IMAGE_LOCATIONS = Locations(shm_base=Path(contract.DEFAULT_SHM_DIR), ssd=Path(contract.DEFAULT_SSD),
                            pv=Path(contract.DEFAULT_PV))


def in_image(package_dir: Path = PACKAGE_DIR) -> bool:
    """True when this runtime is the one an imagekit image carries."""
    return package_dir.parent == Path(contract.IMAGE_RUNTIME_DIR)


def state_home() -> Path:
    """imagekit's per-user state directory: $XDG_STATE_HOME/imagekit, else ~/.local/state/imagekit."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "imagekit"


def host_locations() -> Locations:
    state = state_home()
    return Locations(shm_base=Path(f"{contract.SHM_MOUNT}/imagekit-{os.getuid()}"), ssd=state / "ssd", pv=state / "pv")


def default_locations() -> Locations:
    return IMAGE_LOCATIONS if in_image() else host_locations()


def checkpoint_dir(given: Path | None, image_default: Path, host_default: Path) -> Path | None:
    """A pipeline's checkpoint path as this machine uses it: the image's default becomes the host's."""
    if given is not None and given == image_default:
        return host_default
    return given
