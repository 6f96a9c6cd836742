"""The runtime contract, spelled once: what a step sees, what the runtime writes, where an image keeps it.

Every other module (runtime, build, deploy, emulator, bench, tests) takes these names from here.
docs/contract.md explains them for the people who write steps and pipelines.
"""
from __future__ import annotations

from enum import StrEnum

# ------------------------------------------------------------------ environment a step sees
ENV_PREFIX = "IMAGEKIT_"      # every variable imagekit sets: never a param's or step env's name
# Set by the runtime or the loader for every step: a param or step env of one of these names is refused.
RESERVED_ENV = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUNBUFFERED",
                          "PYTHONDONTWRITEBYTECODE", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "HOME", "PWD",
                          "SHELL", "USER", "IFS", "BASH_ENV", "ENV"})
MAX_ENV_VALUE = 65536  # bytes of one param or env value


def env_problem(name: str, value: str) -> str | None:
    """Why a param or step env NAME=VALUE cannot be given to steps (None when it can)."""
    if name in RESERVED_ENV or name.startswith(ENV_PREFIX):
        return f"{name} is set by imagekit or the system for every step"
    if any(ord(char) < 32 and char != "\t" or ord(char) == 127 for char in value):
        return "the value holds a control character (a newline, a carriage return, NUL, …)"
    if len(value.encode()) > MAX_ENV_VALUE:
        return f"the value is longer than {MAX_ENV_VALUE} bytes"
    return None


IN_PREFIX = "IMAGEKIT_IN_"    # + env_name(data): path of a committed input
OUT_PREFIX = "IMAGEKIT_OUT_"  # + env_name(data): where the step writes that output
SHARD_INDEX = "IMAGEKIT_SHARD_INDEX"  # this shard (also read by the runtime; a pod sets it from its ordinal)
SHARD_COUNT = "IMAGEKIT_SHARD_COUNT"  # number of shards
RUN_DIR = "IMAGEKIT_RUN_DIR"          # the run's directory: journal, logs (also a runtime setting)
STEP = "IMAGEKIT_STEP"                # the name of the running step
INPUTS_GATE = "IMAGEKIT_INPUTS_GATE"  # warm steps only: a FIFO that turns readable once the inputs are committed
DONE_FIFO = "IMAGEKIT_DONE_FIFO"      # a FIFO: one write of "<pid>\n" declares the step's outputs complete (step.done())

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
FETCH_DEADLINE = "IMAGEKIT_FETCH_DEADLINE"          # seconds one http(s) source GET may take in all (default 3600)
CPUS = "IMAGEKIT_CPUS"                              # the CPUs the pod may use, when no cgroup cpu.max says it
LOG_FORMAT = "IMAGEKIT_LOG_FORMAT"                  # "json": log lines as JSON objects on stdout
RUN_NAME = "IMAGEKIT_RUN"                           # {run} in source and sink URLs: the job's name for this run
LOG_FORMAT_JSON = "json"

# ------------------------------------------------------------------ the S3 client (boto3's standard configuration)
S3_ENDPOINT_URL = "AWS_ENDPOINT_URL"   # plain env: where the S3 server is (any S3-protocol store)
S3_REGION = "AWS_REGION"
S3_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # only ever from a Secret

# ------------------------------------------------------------------ warm steps
WAIT_PROGRAM = "imagekit-wait"  # on every step's PATH: blocks a warm shell step until its inputs are committed
GATE_OPEN = b"\n" * 4096        # what the runtime writes into a gate: one line per `read` a waiter may do

# ------------------------------------------------------------------ environment the host-side CLI reads
BACKEND = "IMAGEKIT_BACKEND"                          # build/push: docker or buildah
INSPECT_SOURCE = "IMAGEKIT_INSPECT_SOURCE"            # inspect: where to look for the image
INSECURE_REGISTRIES = "IMAGEKIT_INSECURE_REGISTRIES"  # registries spoken to over plain HTTP (comma list)
KRUISE_CRD = "IMAGEKIT_KRUISE_CRD"                    # deploy: the OpenKruise StatefulSet CRD to check against
REPO = "IMAGEKIT_REPO"                                # build: default repository, as ko's KO_DOCKER_REPO


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
    PLAN = "plan"                  # to_run, reused, restore, available, inputs
    TRANSITION = "transition"      # step, from, to (+ attempt, exit_code, reason, bytes_out, outputs)
    VETTED = "vetted"              # step, bytes_out, outputs: the sizes of a commit whose outputs were walked later
    CHECKPOINTED = "checkpointed"  # step, data, tier, path
    FREED = "freed"                # step, data, bytes
    RUN_END = "run-end"            # status, exit_code, peak_shm_bytes


class Source(StrEnum):
    """Where a data item is found when a run starts, best first; for each input of a step that runs, the
    `inputs` of the plan event and of the step in the summary say which it came from."""

    SHM = "shm"  # committed in shm by an earlier run in the same pod (kept across a container restart)
    SSD = "ssd"  # restored from the node-local SSD checkpoint
    PV = "pv"    # restored from the PersistentVolume checkpoint
    RUN = "run"  # made by a step of this run


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
LOGS_DIR = "logs"                            # in the run directory and beside the SSD checkpoints: <step>.log
HELPER_DIR = "python"  # in the run dir: imagekit_runtime alone, on steps' PYTHONPATH
SUPERVISOR_CONF = "supervisord.conf"         # in the run directory
SUPERVISOR_LOG = "supervisord.log"           # in the run directory
GATES_DIR = "gates"                          # in the run directory: <step>, the FIFO of a warm step
DONE_FIFO_NAME = "done.fifo"                 # in the run directory: $IMAGEKIT_DONE_FIFO, shared by every step
BIN_DIR = "bin"                              # in the run directory: imagekit-wait, on every step's PATH
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
TRANSFERS_DIR = "transfers"                  # in the run directory: <source|sink>.<data>.json, a transfer's manifest
SINK_SUCCESS_MARKER = "_SUCCESS"             # written last below a sink's prefix: the directory is complete


SHARD_DIR_PREFIX = "shard-"                  # <shm>/<pipeline>/shard-<i>, <tier>/<pipeline>/shard-<i>


def shard_dir_name(shard_index: int | str) -> str:
    return f"{SHARD_DIR_PREFIX}{shard_index}"


def checkpoint_item_name(data: str, data_key: str) -> str:
    return f"{data}@{data_key[:16]}"


# ------------------------------------------------------------------ metrics and health (served with --metrics ADDR)
METRICS_PORT = 9464              # in pods, on the container port named METRICS_PORT_NAME
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"        # Prometheus text format
HEALTHZ_PATH = "/healthz"        # 200 while the conductor's loop beats, 503 once it is stale
READYZ_PATH = "/readyz"          # 200 once the run is under way (or complete), 503 before and while stopping
HEARTBEAT_STALE_SECONDS = 10.0   # /healthz fails when the loop has not beaten for this long


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
RUNTIME_USER = "imagekit"             # its name in /etc/passwd and /etc/group
RUNTIME_HOME = "/home/imagekit"
SHM_MOUNT = "/dev/shm"
DEFAULT_SHM_DIR = "/dev/shm/imagekit"
IMAGE_ROOT = "/opt/imagekit"
IMAGE_RUNTIME_DIR = f"{IMAGE_ROOT}/runtime"    # this package (on PYTHONPATH)
IMAGE_DEPS_ROOT = f"{IMAGE_ROOT}/deps"         # <step>/: each step's installed requirements
IMAGE_PIPELINE_DIR = f"{IMAGE_ROOT}/pipeline"  # pipeline.yaml and the step packages
IMAGE_PIPELINE_FILE = f"{IMAGE_PIPELINE_DIR}/pipeline.yaml"
IMAGE_SBOM_DIR = f"{IMAGE_ROOT}/sbom"        # <step>.cdx.json in a step's deps layer, runtime.cdx.json
IMAGE_S3_CLIENT_DIR = f"{IMAGE_ROOT}/s3"     # boto3 and its dependencies (pip --target), only when s3 is used
STATE_ROOT = "/var/lib/imagekit"
DEFAULT_SSD = f"{STATE_ROOT}/ssd"
DEFAULT_PV = f"{STATE_ROOT}/pv"


# ------------------------------------------------------------------ step kinds
class StepKind(StrEnum):
    """`kind` in step.yaml: which parallelism limit a step counts against."""

    CPU = "cpu"  # compute-bound: at most parallelism.cpu at once (default: the CPUs the pod may use)
    IO = "io"    # waits on the network or disks: at most parallelism.io at once (default: 4 × the cpu limit)


IO_PER_CPU = 4  # parallelism.io when not given: this many io steps per cpu slot
