"""imagekit on the local Kubernetes + OpenKruise cluster (scripts/cluster.sh), side by side in one run:

1. `deploy apply` to the first step running in each pod, on nodes that hold no image but the pause image
   (cold: the kubelet pulls every layer, base included, from the local registry by digest) against nodes
   that hold it (warm);
2. the same cold start for the naive image (one hand-written Containerfile: code copied, then every step's
   requirements installed, bench_build.py's), and for imagekit's image with zstd layers (pushed by imagekit
   with --compression zstd's code path: the trial of issue 28);
3. a second pipeline (`imagekit init`'s scaffold) on nodes that hold the first pipeline's image: it shares
   the base and runtime layers, so only its own are pulled;
4. a new image (only `report` changed) applied to a complete set: Kruise's in-place update against a plain
   StatefulSet's recreate, from `deploy apply` to `report` running again.

Times come from the runtime's journal in each pod (a transition's `ts`) against the wall clock at apply: one
machine, one clock. Prints the medians over --rounds and the ratios cold/warm and in-place/recreate.

    python3 bench/bench_cluster.py [--rounds 3] [--replicas 2]

Needs root, the registry and base image (scripts/bootstrap.sh) and the cluster (it runs `scripts/cluster.sh
up`, a cold Go build the first time). Everything it deploys is named bench-<pid>-… and deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "core", REPO / "runtime", REPO / "deploy"):
    sys.path.insert(0, str(path))

from imagekit_core import contract  # noqa: E402
from imagekit_deploy.emulator.blueprint import pod_blueprint  # noqa: E402
from imagekit_deploy.kube.client import Cluster  # noqa: E402
from imagekit_deploy.kube.shards import find_workload, wait_complete  # noqa: E402
from imagekit_runtime.observe.journal import Entry, parse_text, run_ids  # noqa: E402
from imagekit_runtime.states import StepState  # noqa: E402
from pages import Measured  # noqa: E402

CLUSTER = REPO / "scripts" / "cluster.sh"
REGISTRY = os.environ.get("IMAGEKIT_REGISTRY", "127.0.0.1:5000")
BASE = "imagekit/debian-python:bookworm"
NODES = ("imagekit-node-a", "imagekit-node-b")
STORAGE = ["--pv-storage-class", "imagekit-shared", "--pv-size", "1Gi", "--ssd-size", "1Gi"]


def run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=3600)
    if done.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, argv))} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def imagekit(*args: str | Path) -> str:
    return run(sys.executable, "-m", "imagekit.cli.main", *args,
               env={"PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("", "core", "runtime", "deploy"))})


def naive_image(pipeline: Path, work: Path) -> str:
    """The naive single-Containerfile image of the pipeline (bench_build.py's), pushed by Docker."""
    from bench_build import naive_context
    from imagekit.build.builder import probe_target
    from imagekit.build.engines import get_backend

    docker = get_backend("docker")
    target = probe_target(docker, docker.ensure_image(BASE), None)
    context = naive_context(pipeline, work / "naive", BASE, target.pip_args())
    tag = f"{REGISTRY}/imagekit-bench/cluster-naive-{os.getpid()}:v1"
    run("docker", "build", "--quiet", "--tag", tag, "--file", context / "Containerfile", context)
    pushed = run("docker", "push", tag)
    digest = next(line.split("digest: ")[1].split()[0] for line in pushed.splitlines() if "digest: " in line)
    return f"{tag.rsplit(':', 1)[0]}@{digest}"


def zstd_image(pipeline: Path, v1: str) -> str:
    """v1 again, its layers compressed with zstd (the base's fetched and compressed again), pushed by imagekit."""
    from imagekit.build.builder import BuildOptions, build_image
    from imagekit.build.engines import get_backend
    from imagekit.publish.cache_image import RegistryCache
    from imagekit.publish.image_push import Compression, push_image
    from imagekit_core.spec import load_pipeline

    cache = RegistryCache([v1])
    tag = f"{v1.split('@')[0].rsplit(':', 1)[0]}:v1-zstd"
    built = build_image(load_pipeline(pipeline), get_backend("docker"),
                        BuildOptions(tag=tag, base=BASE, cache=cache, fetch_reused=False))
    assert built.image is not None
    pushed = push_image(built.image, tag, cache, compression=Compression.zstd)
    assert pushed is not None
    return pushed.reference


def second_pipeline(work: Path) -> tuple[Path, str]:
    """`imagekit init`'s scaffold, built on the same base (so the same base and runtime layers) and pushed."""
    directory = work / "second"
    imagekit("init", directory)
    tag = f"{REGISTRY}/imagekit-bench/cluster-second-{os.getpid()}:v1"
    return directory, imagekit("build", directory, "--base", BASE, "--tag", tag, "--push").strip()


def build_versions(work: Path) -> tuple[Path, str, str]:
    pipeline = work / "wordfreq"
    shutil.copytree(REPO / "pipelines" / "wordfreq", pipeline)
    repository = f"{REGISTRY}/imagekit-bench/cluster-{os.getpid()}"
    v1 = imagekit("build", pipeline, "--base", BASE, "--tag", f"{repository}:v1", "--push").strip()
    report = pipeline / "steps" / "report" / "main.py"
    report.write_text(report.read_text().replace('        "top10": top,\n', '        "top10": top,\n        "edition": 2,\n'))
    v2 = imagekit("build", pipeline, "--base", BASE, "--tag", f"{repository}:v2", "--push").strip()
    return pipeline, v1, v2


def render(pipeline: Path, image: str, name: str, replicas: int, work: Path, *flags: str) -> Path:
    out = work / f"{name}-{image.rsplit('@', 1)[-1][7:15]}"
    imagekit("deploy", "render", pipeline, "--image", image, "--name", name, "--replicas", str(replicas),
             "-d", out, *STORAGE, *flags)
    return out


def journal(cluster: Cluster, name: str, shard: int) -> list[Entry]:
    workload = find_workload(cluster, name, cluster.namespace)
    pod = pod_blueprint(workload, name, cluster.namespace, shard)
    text = cluster.read_text(pod.name, cluster.namespace, "pipeline", f"{pod.run_dir()}/{contract.JOURNAL_FILE}")
    return parse_text(text or "")


def first_running(entries: list[Entry], step: str | None = None) -> float:
    """The ts of the newest run's first step (or of `step`) going to running."""
    newest = run_ids(entries)[-1]
    return min(float(e["ts"]) for e in entries if e.get("run") == newest and e.get("event") == contract.Event.TRANSITION
               and e.get("to") == StepState.RUNNING and (step is None or e.get("step") == step))


CASES = {
    "cold": "wordfreq: apply -> first step running, cold nodes",
    "warm": "wordfreq: apply -> first step running, warm nodes",
    "cold-naive": "naive image: apply -> first step running, cold nodes",
    "cold-zstd": "wordfreq, zstd layers: apply -> first step, cold nodes",
    "second": "second pipeline on nodes holding the first's image",
    "in-place": "wordfreq: new image -> `report` running, in place",
    "recreate": "wordfreq: new image -> `report` running, recreated",
}
PAUSE = "imagekit.local/pause"  # the sandbox image cluster.sh loads: nothing pulls it, so it stays


def clear_nodes() -> list[str]:
    """The nodes forget every image but the pause image, so the next pod pulls every layer of its image (what
    a new node has). Returns the images a node kept because a running container used them (then not cold)."""
    kept: list[str] = []
    for node in NODES:
        listing = run("bash", CLUSTER, "crictl", node, "images", "-o", "json")
        for image in json.loads(listing).get("images", []):
            names = image.get("repoTags", []) + image.get("repoDigests", [])
            if any(name.startswith(PAUSE) for name in names):
                continue
            removed = subprocess.run(["bash", str(CLUSTER), "crictl", node, "rmi", image["id"]], capture_output=True,
                                     timeout=300)
            if removed.returncode != 0:
                kept.append(f"{node}: {(names or [image['id']])[0]}")
    return kept


def apply_to_first_step(cluster: Cluster, rendered: Path, name: str, replicas: int) -> list[float]:
    started = time.time()
    imagekit("deploy", "apply", rendered)
    wait_complete(cluster, name, cluster.namespace, timeout=900, interval=1.0)
    return [first_running(journal(cluster, name, shard)) - started for shard in range(replicas)]


def update_to_report(cluster: Cluster, rendered: Path, name: str, replicas: int) -> list[float]:
    started = time.time()
    imagekit("deploy", "apply", rendered)
    wait_complete(cluster, name, cluster.namespace, timeout=900, interval=1.0)
    return [first_running(journal(cluster, name, shard), "report") - started for shard in range(replicas)]


def delete(name: str) -> None:
    subprocess.run([sys.executable, "-m", "imagekit.cli.main", "deploy", "delete", name, "--delete-data"],
                   capture_output=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       str(REPO / p) for p in ("", "core", "runtime", "deploy"))}, timeout=300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/cluster.md")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    kubeconfig = run("bash", CLUSTER, "up").strip().splitlines()[-1]
    os.environ["KUBECONFIG"] = kubeconfig
    cluster = Cluster.connect(Path(kubeconfig))
    times: dict[str, list[float]] = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-cluster-") as temporary:
        work = Path(temporary)
        pipeline, v1, v2 = build_versions(work)
        images = {"cold": v1, "warm": v1, "cold-naive": naive_image(pipeline, work), "cold-zstd": zstd_image(pipeline, v1)}
        second, second_image = second_pipeline(work)
        not_cold: list[str] = []
        for round_index in range(args.rounds):
            for case in ("cold", "warm", "cold-naive", "cold-zstd", "second"):
                if case.startswith("cold"):
                    not_cold += clear_nodes()
                name = f"bench-{os.getpid()}-{secrets.token_hex(2)}"
                source, image = (second, second_image) if case == "second" else (pipeline, images[case])
                try:
                    times[case] += apply_to_first_step(cluster, render(source, image, name, args.replicas, work),
                                                       name, args.replicas)
                finally:
                    delete(name)
            for case, flags in (("in-place", ()), ("recreate", ("--flavor", "statefulset"))):
                name = f"bench-{os.getpid()}-{secrets.token_hex(2)}"
                try:
                    apply_to_first_step(cluster, render(pipeline, v1, name, args.replicas, work, *flags), name,
                                        args.replicas)
                    times[case] += update_to_report(cluster, render(pipeline, v2, name, args.replicas, work, *flags),
                                                    name, args.replicas)
                finally:
                    delete(name)
            print(f"round {round_index}: " + ", ".join(f"{k} {statistics.median(v):.2f}s" for k, v in times.items()),
                  file=sys.stderr)
    medians = {case: statistics.median(values) for case, values in times.items()}
    if not_cold:
        print(f"bench: in use, so not removed before a cold case: {', '.join(sorted(set(not_cold)))}", file=sys.stderr)
    print(json.dumps({"rounds": args.rounds, "replicas": args.replicas, "seconds": times, "medians": medians,
                      "kept_on_cold_nodes": sorted(set(not_cold)),
                      "cold/warm": medians["cold"] / medians["warm"],
                      "cold/cold-naive": medians["cold"] / medians["cold-naive"],
                      "cold-zstd/cold": medians["cold-zstd"] / medians["cold"],
                      "in-place/recreate": medians["in-place"] / medians["recreate"]},
                     indent=2))
    say = Measured("cluster", "cold and warm nodes, in place and recreate")
    say(f"{args.replicas} pods per case, {args.rounds} rounds; medians of the pod times (s), each pod's after")
    for case, title in CASES.items():
        say(f"  {title:<58} {medians[case]:6.2f}   {', '.join(f'{v:.2f}' for v in times[case])}")
    say(f"  cold/warm {medians['cold'] / medians['warm']:.2f}; cold/cold naive image "
        f"{medians['cold'] / medians['cold-naive']:.2f}; cold zstd/cold gzip {medians['cold-zstd'] / medians['cold']:.2f}; "
        f"second pipeline/cold {medians['second'] / medians['cold']:.2f}; in-place/recreate "
        f"{medians['in-place'] / medians['recreate']:.2f}")
    if not args.no_write:
        say.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
