"""The flags of `imagekit deploy render`, declared once (imagekit_runtime/flagtable.py): the CLI renders this
table as its options and hands the values on as one RenderFlags; settings.resolve_settings checks them against
the pipeline into DeploySettings. A default is defined once, here, and said in the help."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from imagekit_core import contract
from imagekit_core.flagtable import Flag
from imagekit_core.spec.quantity import format_bytes

GiB = 1024**3


class Flavor(StrEnum):
    kruise = "kruise"
    statefulset = "statefulset"


class SsdMode(StrEnum):
    hostpath = "hostpath"
    local_pv = "local-pv"


# The default: a local-PV claim takes its owner from fsGroup, so the pod needs no init container and a new
# image changes nothing but the pipeline container's image: Kruise updates it in place. hostPath needs an
# init container running the pipeline image (to hand the directory to the runtime's user), so every new
# image recreates the pod.
DEFAULT_SSD_MODE = SsdMode.local_pv
DEFAULT_FLAVOR = Flavor.kruise
DEFAULT_PV_SIZE = 10 * GiB
DEFAULT_SSD_SIZE = 50 * GiB
DEFAULT_SSD_STORAGE_CLASS = "imagekit-local-ssd"
DEFAULT_SSD_HOST_PATH = "/var/lib/imagekit"
DEFAULT_MAX_UNAVAILABLE = 1

RENDER_FLAGS: tuple[Flag, ...] = (
    Flag("image", "the built pipeline image, e.g. registry.example.com/wordfreq:1.0", required=True),
    Flag("replicas", "shards = pod ordinals [default: the pipeline's shards]", "int"),
    Flag("flavor", f"kruise (Advanced StatefulSet) or statefulset (apps/v1) [default: {DEFAULT_FLAVOR.value}]",
         "choice", choices=tuple(Flavor)),
    Flag("namespace", "namespace of the resources [default: kubectl's]", short="-n"),
    Flag("ssd", f"node-local SSD as a local-PV claim (pods update in place) or a hostPath (each new image recreates "
                f"the pods) [default: {DEFAULT_SSD_MODE.value}]", "choice", choices=tuple(SsdMode)),
    Flag("memory_limit", "container memory, shm included [default: shm + 512Mi per parallel step + 256Mi]"),
    Flag("cpus", "the pod's CPU request and limit, e.g. 4 or 1500m; the runtime runs that many compute-bound steps "
                 "at once [default: no CPU limit]"),
    Flag("pv_size", f"PersistentVolume claim size [default: {format_bytes(DEFAULT_PV_SIZE)}]"),
    Flag("pv_storage_class", "StorageClass of the PV claim [default: the cluster's default]"),
    Flag("ssd_size", f"local-PV SSD claim size [default: {format_bytes(DEFAULT_SSD_SIZE)}]"),
    Flag("ssd_storage_class", f"StorageClass of the local-PV SSD claim [default: {DEFAULT_SSD_STORAGE_CLASS}]"),
    Flag("ssd_host_path", f"node directory for a hostPath SSD [default: {DEFAULT_SSD_HOST_PATH}]"),
    Flag("skip_shard", "kruise only: reserve this ordinal, i.e. run no pod for this shard (repeatable)", "int-list",
         metavar="N"),
    Flag("max_unavailable", f"pods updated at once, a number or a percentage [default: {DEFAULT_MAX_UNAVAILABLE}]"),
    Flag("name", "StatefulSet and Service name [default: the pipeline's name]"),
    Flag("pod_monitor", "also render a prometheus-operator PodMonitor scraping the pods' metrics port", "switch"),
    Flag("env", f"KEY=VALUE: a plain variable of the pipeline container, e.g. {contract.S3_ENDPOINT_URL}=… or "
                f"{contract.S3_REGION}=… (repeatable; never a credential)", "list", metavar="KEY=VALUE", short="-e"),
    Flag("s3_secret", "a Secret whose keys (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, …) become the pipeline "
                      "container's env (envFrom)"),
    Flag("run", f"the job's run name ({contract.RUN_NAME}): what {{run}} in source and sink URLs stands for, the same "
                "in every pod and restart"),
)


@dataclass
class RenderFlags:
    """What `deploy render` was given, as parsed; None (or empty) where a flag was left out."""

    image: str = ""
    replicas: int | None = None
    flavor: str = DEFAULT_FLAVOR.value
    namespace: str | None = None
    ssd: str | None = None
    memory_limit: str | None = None
    cpus: str | None = None
    pv_size: str | None = None
    pv_storage_class: str | None = None
    ssd_size: str | None = None
    ssd_storage_class: str | None = None
    ssd_host_path: str | None = None
    skip_shard: list[int] = field(default_factory=list)
    max_unavailable: str | None = None
    name: str | None = None
    pod_monitor: bool = False
    env: list[str] = field(default_factory=list)
    s3_secret: str | None = None
    run: str | None = None
