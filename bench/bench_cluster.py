"""imagekit on the local Kubernetes + OpenKruise cluster (scripts/cluster.sh), side by side in one run:

1. `deploy apply` to the first step running in each pod, on nodes that hold no image but the pause image
   (cold: the kubelet pulls every layer, base included, from the local registry by digest) against nodes
   that hold it (warm);
2. a new image (only `report` changed) applied to a complete set: Kruise's in-place update against a plain
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
    times: dict[str, list[float]] = {"cold": [], "warm": [], "in-place": [], "recreate": []}
    with tempfile.TemporaryDirectory(prefix="imagekit-bench-cluster-") as temporary:
        work = Path(temporary)
        pipeline, v1, v2 = build_versions(work)
        not_cold: list[str] = []
        for round_index in range(args.rounds):
            for case in ("cold", "warm"):
                if case == "cold":
                    not_cold += clear_nodes()
                name = f"bench-{os.getpid()}-{secrets.token_hex(2)}"
                try:
                    times[case] += apply_to_first_step(cluster, render(pipeline, v1, name, args.replicas, work),
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
                      "in-place/recreate": medians["in-place"] / medians["recreate"]},
                     indent=2))
    say = Measured("cluster", "cold and warm nodes, in place and recreate")
    say(f"wordfreq, {args.replicas} pods per case, {args.rounds} rounds; medians of the pod times (s), each pod's after")
    for case, title in (("cold", "apply -> first step running, cold nodes"),
                        ("warm", "apply -> first step running, warm nodes"),
                        ("in-place", "new image -> `report` running, in place"),
                        ("recreate", "new image -> `report` running, recreated")):
        say(f"  {title:<42} {medians[case]:6.2f}   {', '.join(f'{v:.2f}' for v in times[case])}")
    say(f"  cold/warm {medians['cold'] / medians['warm']:.2f}; in-place/recreate "
        f"{medians['in-place'] / medians['recreate']:.2f}")
    if not args.no_write:
        say.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
