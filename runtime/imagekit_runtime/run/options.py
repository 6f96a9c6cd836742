"""What a run is given: its options (RunOptions, one object from parsing to the conductor) and what the
conductor drives (Collaborators, made by main.open_conductor and closed by it after the run)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..checkpoint.store import CheckpointStore
from ..data.copier import Copier
from ..data.datastore import DataStore
from ..layout import RunLayout
from ..observe.journal import Journal
from ..states import StepState
from ..supervise.environments import EnvironmentProvider
from .drives import EchoFactory, StepHost
from .flags import RunFlags


@dataclass
class RunOptions:
    """The flags as given, whole, and what settings.resolve_options made of them with IMAGEKIT_* and the pipeline.

    A new flag is a row in flags.py's table and a field of RunFlags; whoever needs it reads options.flags."""

    layout: RunLayout
    flags: RunFlags = field(default_factory=RunFlags)
    shard_index: int = 0
    shard_count: int = 1
    params: dict[str, str] = field(default_factory=dict)  # the pipeline's params with the --param overrides
    hold: bool = False  # --hold-when-complete or its variable: a complete run frees from shm what checkpoints hold
    quiet_steps: bool = False  # echo no step output
    json_logs: bool = False  # echo it as JSON lines on stdout (else prefixed lines on stderr)
    poll_interval: float = 0.01  # without pidfds: how often to ask supervisord about the live steps
    log_interval: float = 1.0  # without inotify: how often step logs are echoed
    copy_poll_interval: float = 0.1  # while copies hold data in shm: how often to look whether it can be freed
    retry_backoff: float = 0.5  # seconds before the first retry; doubles each time, at most 10 s
    on_tick: Callable[[], None] = field(default=lambda: None)  # each turn of the loop: the health heartbeat
    on_transition: Callable[[str, StepState, StepState], None] | None = None  # progress displays
    inherit_fds: tuple[int, ...] = ()  # passed to supervisord and so to every step: the shard lock


@dataclass
class Collaborators:
    """What the conductor drives; whoever made them closes them after the run."""

    store: DataStore
    checkpoints: CheckpointStore
    copier: Copier
    journal: Journal            # its run_id is the run's
    host: StepHost              # made, not started: the conductor starts it with the steps to run
    echo: EchoFactory           # step output shown as it is written (StepLogs: text or JSON, kept beside SSD)
    environments: EnvironmentProvider  # settings.resolve_environments: cached venvs or the image's deps
    warnings: list[str]         # the checkpoint store's too
