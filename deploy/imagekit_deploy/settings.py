"""Deploy settings: the choices a user makes on `imagekit deploy render`, checked once.

`resolve_settings` turns raw flag values plus a `PipelineSpec` into a frozen
`DeploySettings`, or refuses with one line (exit 2) naming the flag or the
pipeline field at fault and the fix. The renderers trust what it returns.
"""
from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath

from imagekit_core import contract
from imagekit_core.errors import SpecError, UsageError
from imagekit_core.redact import looks_like_credential
from imagekit_core.references import parse_reference
from imagekit_core.spec import PipelineSpec
from imagekit_core.spec.quantity import format_bytes, parse_bytes, parse_cpus

from .flags import (
    DEFAULT_FLAVOR,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PV_SIZE,
    DEFAULT_SSD_HOST_PATH,
    DEFAULT_SSD_MODE,
    DEFAULT_SSD_SIZE,
    DEFAULT_SSD_STORAGE_CLASS,
    Flavor,
    RenderFlags,
    SsdMode,
)

__all__ = ["DEFAULT_SSD_MODE", "DeploySettings", "Flavor", "RenderFlags", "SsdMode", "resolve_settings"]

MiB = 1024**2
GiB = 1024**3

# Where the image keeps the pipeline and the runtime; mounting over it would hide them.
IMAGE_PIPELINE_DIR = contract.IMAGE_ROOT
SHM_MOUNT = contract.SHM_MOUNT
TMP_MOUNT = "/tmp"
RUN_AS_USER = contract.RUNTIME_UID

# Memory the runtime (supervisord + conductor) needs beside shm, and a default
# allowance per step process running at once. The limit covers shm too: pages of a
# medium-Memory emptyDir are charged to the container that writes them.
RUNTIME_MEMORY = 256 * MiB
STEP_MEMORY = 512 * MiB
MIN_PROCESS_MEMORY = 128 * MiB

# terminationGracePeriodSeconds = the pipeline's grace_seconds (steps wind down)
# + time to write all of shm to the SSD at a pessimistic rate + a fixed margin.
FLUSH_BYTES_PER_SECOND = 100 * MiB
GRACE_MARGIN_SECONDS = 15

# A StatefulSet's name ends up in the controller-revision-hash label value
# (name + "-" + 10 characters), which must fit in 63 characters.
MAX_WORKLOAD_NAME = 52
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# Container paths a checkpoint volume must not cover: system directories of the
# image, the memory-backed /dev/shm and /tmp (not durable), and the pipeline itself.
RESERVED_PATHS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr", TMP_MOUNT, IMAGE_PIPELINE_DIR,
)


HOSTPATH_RECREATES = ("--ssd hostpath: its prepare-ssd init container runs the pipeline image, so each new image "
                      "recreates the pods (shm lost) instead of updating them in place; --ssd local-pv does not")


@dataclass(frozen=True)
class DeploySettings:
    """Everything a renderer needs beyond the pipeline spec, already validated."""

    image: str
    name: str  # StatefulSet, Service and pod-name prefix
    shard_count: int  # IMAGEKIT_SHARD_COUNT; one pod ordinal per shard
    flavor: Flavor = DEFAULT_FLAVOR
    namespace: str | None = None
    ssd: SsdMode | None = DEFAULT_SSD_MODE  # None when the pipeline has no SSD checkpoint
    memory_limit: int = 0
    cpus: Fraction | None = None  # --cpus: the pod's CPU request and limit; the runtime's cpu slots follow it
    pv_size: int = DEFAULT_PV_SIZE
    pv_storage_class: str | None = None  # None: the cluster's default class
    ssd_size: int = DEFAULT_SSD_SIZE
    ssd_storage_class: str = DEFAULT_SSD_STORAGE_CLASS
    ssd_host_path: str = DEFAULT_SSD_HOST_PATH
    skip_shards: tuple[int, ...] = ()  # reserveOrdinals (kruise only)
    max_unavailable: int | str = DEFAULT_MAX_UNAVAILABLE
    termination_grace_seconds: int = 30
    pod_monitor: bool = False  # also render a prometheus-operator PodMonitor
    env: tuple[tuple[str, str], ...] = ()  # --env KEY=VALUE: plain env of the pipeline container (no secrets)
    s3_secret: str | None = None  # --s3-secret: the Secret whose keys become env (envFrom), e.g. AWS_ACCESS_KEY_ID
    run_name: str | None = None  # --run: IMAGEKIT_RUN, what {run} in source and sink URLs stands for

    @property
    def replicas(self) -> int:
        """Pods the controller keeps running: every shard except the skipped ones."""
        return self.shard_count - len(self.skip_shards)


def cpu_steps(spec: PipelineSpec, cpus: Fraction | None = None) -> int:
    """Compute-bound steps running at once in the pod: the pipeline's parallelism.cpu, else the CPU limit
    (rounded up, as the runtime does), else 1 (no limit known here)."""
    return spec.parallelism.cpu or (math.ceil(cpus) if cpus else 1)


def default_memory_limit(spec: PipelineSpec, cpus: Fraction | None = None) -> int:
    return spec.shm_bytes + cpu_steps(spec, cpus) * STEP_MEMORY + RUNTIME_MEMORY


def termination_grace_seconds(spec: PipelineSpec) -> int:
    flush_seconds = spec.shm_bytes / FLUSH_BYTES_PER_SECOND
    return int(math.ceil(spec.grace_seconds + flush_seconds + GRACE_MARGIN_SECONDS))


def _size_flag(value: str | None, flag: str, default: int) -> int:
    return default if value is None else parse_bytes(value, file=None, field=flag)


def _parse_max_unavailable(value: str) -> int | str:
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        number = int(text)
        if number >= 1:
            return number
    elif re.fullmatch(r"\d+%", text) and 1 <= int(text[:-1]) <= 100:
        return text
    raise UsageError(f"--max-unavailable {value!r} is not a positive number or a percentage 1%-100% (fix: e.g. 1 or 25%)")


def _under(path: PurePosixPath, top: str) -> bool:
    return path == PurePosixPath(top) or PurePosixPath(top) in path.parents


def check_checkpoint_paths(spec: PipelineSpec) -> None:
    """Each checkpoint path becomes a mount point: it must be durable, writable and apart from the other."""
    paths = {"ssd": spec.checkpoint.ssd, "pv": spec.checkpoint.pv}
    for key, value in paths.items():
        if value is None:
            continue
        path = PurePosixPath(value)
        field = f"checkpoint.{key}"
        if path == PurePosixPath("/"):
            raise SpecError(spec.file, field, "is the root directory; a volume cannot be mounted there",
                            "use a directory of its own such as /var/lib/imagekit/" + key)
        if _under(path, SHM_MOUNT):
            raise SpecError(spec.file, field, f"{path} is inside {SHM_MOUNT}, which is memory and dies with the pod",
                            f"use a path outside {SHM_MOUNT} such as /var/lib/imagekit/{key}")
        for reserved in RESERVED_PATHS:
            if _under(path, reserved):
                raise SpecError(spec.file, field, f"{path} is inside {reserved}, which the pod does not mount for checkpoints",
                                f"use a path of its own such as /var/lib/imagekit/{key}")
    ssd, pv = spec.checkpoint.ssd, spec.checkpoint.pv
    if ssd is not None and pv is not None:
        ssd_path, pv_path = PurePosixPath(ssd), PurePosixPath(pv)
        if _under(ssd_path, str(pv_path)) or _under(pv_path, str(ssd_path)):
            raise SpecError(spec.file, "checkpoint.pv", f"{pv} and checkpoint.ssd {ssd} overlap; they become two separate volumes",
                            "give them sibling paths such as /var/lib/imagekit/ssd and /var/lib/imagekit/pv")
    if pv is None and spec.checkpoint.major:
        raise SpecError(spec.file, "checkpoint.pv", "is null but checkpoint.major lists outputs to keep on the PersistentVolume",
                        "set checkpoint.pv to a path or empty checkpoint.major")
    if pv is None and spec.results:
        raise SpecError(spec.file, "checkpoint.pv", "is null but results are written to <pv>/results/<shard> in a pod",
                        "set checkpoint.pv to a path or remove `results`")


def _memory_limit(spec: PipelineSpec, memory_limit: str | None, cpus: Fraction | None) -> int:
    """--memory-limit (or the default), with room for shm and the step processes."""
    limit = _size_flag(memory_limit, "--memory-limit", default_memory_limit(spec, cpus))
    if spec.shm_bytes >= limit:
        raise UsageError(
            f"shm {format_bytes(spec.shm_bytes)} ({spec.file}) does not fit in --memory-limit {format_bytes(limit)}: "
            "the memory emptyDir at /dev/shm counts against the container's limit "
            f"(fix: raise --memory-limit to at least {format_bytes(default_memory_limit(spec))} or lower shm)")
    if limit - spec.shm_bytes < MIN_PROCESS_MEMORY:
        raise UsageError(
            f"--memory-limit {format_bytes(limit)} leaves {format_bytes(limit - spec.shm_bytes)} beside shm "
            f"{format_bytes(spec.shm_bytes)} for the step processes, less than {format_bytes(MIN_PROCESS_MEMORY)} "
            f"(fix: raise --memory-limit to at least {format_bytes(default_memory_limit(spec))})")
    return limit


ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RUN_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
RUNTIME_ENV_PREFIX = contract.ENV_PREFIX


def parse_env(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """--env KEY=VALUE, each key once; never a credential (those come from --s3-secret) nor the runtime's own."""
    parsed: dict[str, str] = {}
    for item in values:
        key, equals, value = item.partition("=")
        if not equals or not ENV_KEY_RE.match(key):
            raise UsageError(f"--env {item!r} is not KEY=VALUE with KEY a variable name (fix: e.g. --env "
                             f"{contract.S3_ENDPOINT_URL}=http://minio.storage:9000)")
        why = "it is a credential" if key in contract.S3_CREDENTIALS else looks_like_credential(key, value)
        if why:
            raise UsageError(f"--env {key}: {why}, which would be written into the manifest in plain text "
                             "(fix: put it in a Secret and pass --s3-secret NAME)")
        if key == contract.RUN_NAME:
            raise UsageError(f"--env {key}: the run's name is a flag of its own (fix: pass --run NAME)")
        if key.startswith(RUNTIME_ENV_PREFIX):
            raise UsageError(f"--env {key}: {RUNTIME_ENV_PREFIX}* variables are set by imagekit from the pipeline "
                             "and the other flags (fix: drop it, or use the flag or pipeline field that sets it)")
        if key in parsed:
            raise UsageError(f"--env {key} is given twice (fix: give each variable once)")
        parsed[key] = value
    return tuple(parsed.items())


def check_run_name(name: str | None) -> str | None:
    """--run: the job's run name, a part of object keys and paths."""
    if name is not None and not RUN_NAME_RE.fullmatch(name):
        raise UsageError(f"--run {name!r} is not a run name (fix: letters, digits, '.', '_' and '-', at most 128, "
                         "e.g. --run 2026-11-30)")
    return name


def check_secret_name(name: str | None) -> str | None:
    """--s3-secret: a Secret's name, a DNS subdomain."""
    from .validate.fields import DNS_SUBDOMAIN_RE  # here: the validate package imports this module

    if name is not None and (not DNS_SUBDOMAIN_RE.match(name) or len(name) > 253):
        raise UsageError(f"--s3-secret {name!r} is not a Secret name (fix: lower-case letters, digits, '-' and '.', "
                         "as `kubectl create secret generic NAME` takes)")
    return name


def _skipped_shards(skip_shards: tuple[int, ...], flavor: Flavor, shard_count: int) -> tuple[int, ...]:
    """--skip-shard: ordinals to reserve, each a shard, not all of them, Kruise only."""
    skipped = tuple(sorted(set(skip_shards)))
    if skipped:
        if flavor is not Flavor.kruise:
            raise UsageError("--skip-shard needs --flavor kruise: only the Advanced StatefulSet has reserveOrdinals "
                             "(fix: drop --skip-shard or use --flavor kruise)")
        for shard in skipped:
            if not 0 <= shard < shard_count:
                raise UsageError(f"--skip-shard {shard} is not a shard of 0..{shard_count - 1} "
                                 "(fix: name an ordinal below --replicas)")
        if len(skipped) >= shard_count:
            raise UsageError("--skip-shard skips every shard, leaving no pod to run (fix: skip fewer shards)")
    return skipped


# A node's own directories: a root init container creates and chowns directories below --ssd-host-path.
SYSTEM_DIRECTORIES = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
                      "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/log",
                      "/var/run", "/var/lib/kubelet", "/var/lib/containerd", "/var/lib/docker")
SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr",
                "/var/lib/kubelet", "/var/lib/containerd", "/var/lib/docker", "/var/run")


def check_ssd_host_path(path: str) -> None:
    if not path.startswith("/") or "\0" in path:
        raise UsageError(f"--ssd-host-path {path!r} is not an absolute path (fix: e.g. /var/lib/imagekit)")
    normal = posixpath.normpath(path)
    if normal in SYSTEM_DIRECTORIES or any(normal.startswith(tree + "/") for tree in SYSTEM_TREES):
        raise UsageError(f"--ssd-host-path {path}: a system directory of the node, where the init container would "
                         "create and chown directories as root (fix: a directory of its own, e.g. /var/lib/imagekit "
                         "or /mnt/ssd/imagekit)")


def resolve_settings(spec: PipelineSpec, flags: RenderFlags) -> DeploySettings:
    """Check flags against the pipeline; raise UsageError or SpecError (exit 2) on the first problem."""
    image = flags.image.strip()
    flavor, ssd = Flavor(flags.flavor), SsdMode(flags.ssd) if flags.ssd is not None else None
    replicas, namespace, name = flags.replicas, flags.namespace, flags.name
    parse_reference(image, "--image")

    shard_count = spec.shards if replicas is None else replicas
    if shard_count < 1:
        raise UsageError(f"--replicas {shard_count} is less than 1; every pod ordinal is one shard "
                         "(fix: set --replicas to the number of shards, at least 1)")

    workload_name = name or spec.name
    if not DNS_LABEL_RE.match(workload_name) or len(workload_name) > MAX_WORKLOAD_NAME:
        raise UsageError(f"name {workload_name!r} is not a DNS label of at most {MAX_WORKLOAD_NAME} characters "
                         "(fix: pass --name with lower-case letters, digits and '-')")
    if namespace is not None and (not DNS_LABEL_RE.match(namespace) or len(namespace) > 63):
        raise UsageError(f"--namespace {namespace!r} is not a valid namespace name (fix: lower-case letters, digits and '-')")

    check_checkpoint_paths(spec)
    if spec.checkpoint.ssd is None:
        if ssd is not None:
            raise SpecError(spec.file, "checkpoint.ssd", f"is null but --ssd {ssd.value} asks for an SSD volume",
                            "set checkpoint.ssd to a path or drop --ssd")
        ssd_mode = None
    else:
        ssd_mode = ssd or DEFAULT_SSD_MODE

    cpu_limit = None if flags.cpus is None else parse_cpus(flags.cpus, file=None, field="--cpus")
    limit = _memory_limit(spec, flags.memory_limit, cpu_limit)
    skipped = _skipped_shards(tuple(flags.skip_shard), flavor, shard_count)

    if flags.ssd_host_path is not None:
        check_ssd_host_path(flags.ssd_host_path)
    for flag, value in (("--pv-storage-class", flags.pv_storage_class),
                        ("--ssd-storage-class", flags.ssd_storage_class)):
        if value is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value):
            raise UsageError(f"{flag} {value!r} is not a StorageClass name (fix: lower-case letters, digits, '-' and '.')")

    return DeploySettings(
        image=image,
        name=workload_name,
        shard_count=shard_count,
        flavor=flavor,
        namespace=namespace,
        ssd=ssd_mode,
        memory_limit=limit,
        cpus=cpu_limit,
        pv_size=_size_flag(flags.pv_size, "--pv-size", DEFAULT_PV_SIZE),
        pv_storage_class=flags.pv_storage_class,
        ssd_size=_size_flag(flags.ssd_size, "--ssd-size", DEFAULT_SSD_SIZE),
        ssd_storage_class=flags.ssd_storage_class or DEFAULT_SSD_STORAGE_CLASS,
        ssd_host_path=flags.ssd_host_path or DEFAULT_SSD_HOST_PATH,
        skip_shards=skipped,
        max_unavailable=(_parse_max_unavailable(flags.max_unavailable) if flags.max_unavailable is not None
                         else DEFAULT_MAX_UNAVAILABLE),
        termination_grace_seconds=termination_grace_seconds(spec),
        pod_monitor=flags.pod_monitor,
        env=parse_env(tuple(flags.env)),
        s3_secret=check_secret_name(flags.s3_secret),
        run_name=check_run_name(flags.run),
    )
