"""The runtime contract, spelled once: what a step sees, what the runtime writes, where an image keeps it.

Every other module (runtime, build, deploy, emulator, bench, tests) takes these names from here.
docs/contract.md explains them for the people who write steps and pipelines.
"""
from __future__ import annotations

from enum import StrEnum

# ------------------------------------------------------------------ environment a step sees
IN_PREFIX = "IMAGEKIT_IN_"    # + env_name(data): path of a committed input
OUT_PREFIX = "IMAGEKIT_OUT_"  # + env_name(data): where the step writes that output
SHARD_INDEX = "IMAGEKIT_SHARD_INDEX"  # this shard (also read by the runtime; a pod sets it from its ordinal)
SHARD_COUNT = "IMAGEKIT_SHARD_COUNT"  # number of shards
RUN_DIR = "IMAGEKIT_RUN_DIR"          # the run's directory: journal, logs (also a runtime setting)
STEP = "IMAGEKIT_STEP"                # the name of the running step

# ------------------------------------------------------------------ environment the runtime reads
POD_NAME = "IMAGEKIT_POD_NAME"            # the shard's fallback: the ordinal at the end of the pod name
POD_NAMESPACE = "IMAGEKIT_POD_NAMESPACE"  # rendered pods only: part of the hostPath SSD sub-directory
SHM_DIR = "IMAGEKIT_SHM_DIR"
SSD_DIR = "IMAGEKIT_SSD_DIR"
PV_DIR = "IMAGEKIT_PV_DIR"
RESULTS_DIR = "IMAGEKIT_RESULTS_DIR"
DEPS_ROOT = "IMAGEKIT_DEPS_ROOT"                    # prebuilt step dependencies (set in images)
HOLD_WHEN_COMPLETE = "IMAGEKIT_HOLD_WHEN_COMPLETE"  # after success, idle until SIGTERM
CACHE_DIR = "IMAGEKIT_CACHE_DIR"                    # host cache of step environments and wheels


def env_name(data: str) -> str:
    """A data name as the suffix of IMAGEKIT_IN_/IMAGEKIT_OUT_: upper case, `-` as `_`."""
    return data.upper().replace("-", "_")


def input_var(data: str) -> str:
    return IN_PREFIX + env_name(data)


def output_var(data: str) -> str:
    return OUT_PREFIX + env_name(data)


def is_hold_requested(value: str | None) -> bool:
    """IMAGEKIT_HOLD_WHEN_COMPLETE is on unless empty, 0 or false."""
    return (value or "") not in ("", "0", "false")


# ------------------------------------------------------------------ the run journal
class Event(StrEnum):
    """The `event` of a journal line (run/journal.jsonl)."""

    RUN_START = "run-start"        # pipeline, shard, shard_count, key (the pipeline key)
    PLAN = "plan"                  # to_run, reused, restore, available
    TRANSITION = "transition"      # step, from, to (+ attempt, exit_code, reason, bytes_out, outputs)
    CHECKPOINTED = "checkpointed"  # step, data, tier, path
    FREED = "freed"                # step, data, bytes
    RUN_END = "run-end"            # status, exit_code, peak_shm_bytes


class RunStatus(StrEnum):
    """How a run ended: `status` of the run-end event and of the summary."""

    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"
    ALREADY_COMPLETE = "already-complete"


# ------------------------------------------------------------------ files and directories the runtime writes
RUN_DIR_NAME = "run"                         # <shm>/<pipeline>/shard-<i>/run unless IMAGEKIT_RUN_DIR
RESULTS_DIR_NAME = "results"                 # <pv>/results/<shard> unless IMAGEKIT_RESULTS_DIR
JOURNAL_FILE = "journal.jsonl"               # in the run directory
LOGS_DIR = "logs"                            # in the run directory: <step>.log
SUPERVISOR_CONF = "supervisord.conf"         # in the run directory
SUPERVISOR_LOG = "supervisord.log"           # in the run directory
COMMITTED_DIR = "committed"                  # <shm>/…/committed/<step>/<data>
STAGING_DIR = "staging"                      # <shm>/…/staging/<step>/<data>
COMMIT_RECORD = ".commit.json"               # in a step's committed directory: key and sizes
COMPLETION_MARKER = ".imagekit-complete.json"  # in the results directory: the shard is complete
RESULT_RECORDS_DIR = ".imagekit"             # in the results directory: <data>.json per delivered result
CHECKPOINT_DATA = "data"                     # in a checkpoint: what the step wrote
CHECKPOINT_MANIFEST = "manifest.json"        # in a checkpoint: written last
CHECKPOINT_PACK = "data.tar"                 # in a checkpoint of a directory: its small files, links, directories
QUARANTINE_DIR = ".quarantine"               # beside the checkpoints of a shard
QUARANTINE_REASON_SUFFIX = ".reason"         # <quarantined item>.reason: why it was set aside
TEMPORARY_PREFIX = ".tmp-"                   # half-written checkpoints and results


SHARD_DIR_PREFIX = "shard-"                  # <shm>/<pipeline>/shard-<i>, <tier>/<pipeline>/shard-<i>


def shard_dir_name(shard_index: int | str) -> str:
    return f"{SHARD_DIR_PREFIX}{shard_index}"


def checkpoint_item_name(data: str, data_key: str) -> str:
    return f"{data}@{data_key[:16]}"


# ------------------------------------------------------------------ failure levels
class FailureLevel(StrEnum):
    PROCESS = "process"
    CONTAINER = "container"
    POD = "pod"
    NODE = "node"


FAILURE_LEVELS: tuple[str, ...] = tuple(level.value for level in FailureLevel)
# What survives each failure, and so where the runtime resumes from.
SURVIVES: dict[FailureLevel, str] = {
    FailureLevel.PROCESS: "shm (committed outputs), SSD, PV",
    FailureLevel.CONTAINER: "shm (a memory emptyDir), SSD, PV",
    FailureLevel.POD: "SSD, PV",
    FailureLevel.NODE: "PV",
}
FAILURE_LEVELS_HELP = ("process (a step: resumes from shm), container (resumes from shm), "
                       "pod (shm lost: resumes from the SSD), node (shm and SSD lost: resumes from the PV)")

# ------------------------------------------------------------------ the image
RUNTIME_UID = 10001                   # the image's non-root user and group
SHM_MOUNT = "/dev/shm"
DEFAULT_SHM_DIR = "/dev/shm/imagekit"
IMAGE_ROOT = "/opt/imagekit"
IMAGE_RUNTIME_DIR = f"{IMAGE_ROOT}/runtime"    # this package (on PYTHONPATH)
IMAGE_DEPS_ROOT = f"{IMAGE_ROOT}/deps"         # <step>/: each step's installed requirements
IMAGE_PIPELINE_DIR = f"{IMAGE_ROOT}/pipeline"  # pipeline.yaml and the step packages
IMAGE_PIPELINE_FILE = f"{IMAGE_PIPELINE_DIR}/pipeline.yaml"
STATE_ROOT = "/var/lib/imagekit"
DEFAULT_SSD = f"{STATE_ROOT}/ssd"
DEFAULT_PV = f"{STATE_ROOT}/pv"
