"""Sources: the runtime pulling one object into shm against boto3's `download_file` into tmpfs, from the same S3
server, side by side in one run; and a resume after a pod failure, which must download 0 bytes of an unchanged
source.

    python3 bench/bench_sources.py [--size 1Gi] [--rounds 3] [--resume-size 64Mi] [--no-pods] [--no-write]

1. Throughput. moto's S3 server (tests/moto_counting.py: it counts the bytes it serves) listens on the gateway of
   a Docker network of the run's own (paradigms/engine.py); one object of --size is uploaded to it (multipart, as
   any large object). Each round runs, in turn:
   (a) imagekit: `imagekit run --local` of a pipeline whose one source is that object (and whose one step reads
       its size), in a fresh shm directory; the time is the source step's wall time from the run's summary: the
       fetch program started, the object streamed into shm with ranged GETs, verified and committed;
   (b) boto3: `python3 -c "…download_file(…)"` into a tmpfs directory (/dev/shm), timed the same way, from the
       process's start to its exit (imports included, as (a)'s are), with boto3's default TransferConfig;
   (c) the same with boto3's parts as large as the runtime's ranged GETs (transfer/s3.py PART_BYTES): moto's time
       per ranged GET grows with the object, so against moto the part size alone sets the pace (not so on S3).
   All use the host's boto3 and the same server; the server's byte count checks each read the whole object.
   Medians of the rounds, throughput, and the ratio (a)/(b) of throughputs (target: at least 0.9), and (a)/(c).
2. Resume (not with --no-pods). The same pipeline, its step held by a gate, built by `imagekit build` and run as
   two emulated pods (`imagekit deploy render --s3-secret … --env AWS_ENDPOINT_URL=…`, `imagekit pod up
   --network … --secret …`); once pod 1's source is fetched and checkpointed, the pod is failed (`imagekit pod
   kill --level pod`: shm lost, the SSD kept); the bytes the server serves to its replacement (target: 0).

Writes docs/bench/sources.md (not with --no-write) and prints the same. Everything it creates in Docker is named
imagekit-bench-<pid>-… and removed at the end; the image is kept as build cache.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (REPO, REPO / "core", REPO / "runtime", REPO / "deploy", HERE, REPO / "tests"):
    sys.path.insert(0, str(path))

from fixtures_s3 import FAKE_CREDENTIALS, MotoS3, start_moto_s3  # noqa: E402  (the tests' counting moto server)
from imagekit_core import contract  # noqa: E402
from imagekit_core.spec.quantity import format_bytes, human_size, parse_bytes  # noqa: E402
from imagekit_deploy.emulator.engine import Engine  # noqa: E402
from imagekit_deploy.emulator.pods import PodSet  # noqa: E402
from imagekit_deploy.emulator.state import StateDir  # noqa: E402
from imagekit_deploy.emulator.status import read_journal  # noqa: E402
from imagekit_runtime.transfer.s3 import PART_BYTES  # noqa: E402  (the runtime's ranged GET size)
from paradigms import engine  # noqa: E402
from paradigms.engine import Resources, log  # noqa: E402

OUT = HERE / "out" / "sources"
DOC = REPO / "docs" / "bench" / "sources.md"
BUCKET = engine.BUCKET
TARGET_RATIO = 0.9
IMAGE = "imagekit-bench/sources:latest"
PIPELINE_YAML = """\
# bench/bench_sources.py: one source per shard, and a step that reads its size (held while <pv>/gates/hold-size
# exists, for the pod failure of the resume).
name: bench-sources
base: {base}
steps: [steps/size]
shm: {shm}
shards: 2
results: [size]
params:
  OBJECT: "blob"
sources:
  blob: s3://{bucket}/{{OBJECT}}-{{shard}}
"""
SIZE_STEP = "name: size\ncommand: [sh, run.sh]\ninputs: [blob]\noutputs: [size]\n"
SIZE_SCRIPT = ('while [ -e "${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-$IMAGEKIT_STEP" ]; do sleep 0.05; done\n'
               'wc -c < "$IMAGEKIT_IN_BLOB" > "$IMAGEKIT_OUT_SIZE"\n')
BOTO3_DOWNLOAD = ("import sys, boto3; from boto3.s3.transfer import TransferConfig; "
                  "config = TransferConfig(multipart_chunksize=int(sys.argv[4])) if sys.argv[4] != '0' else None; "
                  "boto3.client('s3').download_file(sys.argv[1], sys.argv[2], sys.argv[3], Config=config)")
CONTESTANTS = ("imagekit", "boto3", "boto3-parts")


def imagekit(*args: Any, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    command = [sys.executable, "-m", "imagekit.cli.main", *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=timeout,
                               env={**os.environ, **(env or {})})
    if completed.returncode != 0:
        raise engine.BenchError(f"imagekit {' '.join(map(str, args[:2]))} exited {completed.returncode}:\n"
                                f"{completed.stderr[-3000:]}")
    return completed.stdout


def write_pipeline(size: int) -> Path:
    pipeline = OUT / "pipeline"
    shutil.rmtree(pipeline, ignore_errors=True)
    (pipeline / "steps" / "size").mkdir(parents=True)
    shm = format_bytes(size + 512 * 2**20)
    (pipeline / "pipeline.yaml").write_text(PIPELINE_YAML.format(base=engine.BASE_IMAGE, shm=shm, bucket=BUCKET))
    (pipeline / "steps" / "size" / "step.yaml").write_text(SIZE_STEP)
    (pipeline / "steps" / "size" / "run.sh").write_text(SIZE_SCRIPT)
    return pipeline


def upload(server: MotoS3, key: str, size: int, scratch: Path) -> None:
    """An object of size bytes (random, so nothing compresses it away), uploaded as any large file is."""
    source = scratch / key
    with open(source, "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 64 * 2**20))
            out.write(chunk)
            left -= len(chunk)
    server.client().upload_file(str(source), BUCKET, key)
    source.unlink()


def fetch_with_imagekit(pipeline: Path, resources: Resources, s3_env: dict[str, str]) -> tuple[float, int, float]:
    """`imagekit run --local`, shard 0, in a fresh shm directory: the source step's wall seconds, its bytes, and
    the whole run's wall seconds."""
    shm = resources.tempdir("shm")
    elsewhere = resources.tempdir("results")
    summary = json.loads(imagekit("run", pipeline, "--local", "--shard-index", "0", "--no-checkpoints", "--shm-dir", shm,
                                  "--results", elsewhere / "results", "--ssd", elsewhere / "ssd", "--pv", elsewhere / "pv",
                                  "--output", "json", env=s3_env))
    step = next(step for step in summary["steps"] if step["name"] == "source.blob")
    shutil.rmtree(shm, ignore_errors=True)
    shutil.rmtree(elsewhere, ignore_errors=True)
    return float(step["wall_seconds"]), int(step["bytes_out"]), float(summary["wall_seconds"])


def fetch_with_boto3(resources: Resources, key: str, s3_env: dict[str, str], part_bytes: int = 0) -> tuple[float, int]:
    """boto3's download_file into tmpfs, in a process of its own (part_bytes: its multipart_chunksize; 0: boto3's
    default): its wall seconds, the file's size."""
    directory = resources.tempdir("boto3")
    target = directory / key
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", BOTO3_DOWNLOAD, BUCKET, key, str(target), str(part_bytes)], check=True,
                   env={**os.environ, **s3_env})
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    shutil.rmtree(directory, ignore_errors=True)
    return seconds, size


def throughput(pipeline: Path, resources: Resources, server: MotoS3, size: int, rounds: int) -> dict[str, Any]:
    s3_env = server.env()
    rows: dict[str, list[float]] = {name: [] for name in (*CONTESTANTS, "imagekit-run")}
    for round_ in range(rounds):
        for name in CONTESTANTS[round_ % 3:] + CONTESTANTS[:round_ % 3]:  # each goes first in turn
            server.reset()
            if name == "imagekit":
                seconds, got, whole = fetch_with_imagekit(pipeline, resources, s3_env)
                rows["imagekit-run"].append(whole)
            else:
                seconds, got = fetch_with_boto3(resources, "blob-0", s3_env, PART_BYTES if name == "boto3-parts" else 0)
            served = server.served()["get_bytes"]
            if got != size or served < size:
                raise engine.BenchError(f"{name}: got {got} bytes, the server served {served}, expected {size}")
            rows[name].append(seconds)
            log(f"bench: round {round_ + 1} {name}: {seconds:.2f}s ({size / seconds / 2**20:.0f} MiB/s, "
                f"{served} bytes served)")
    medians = {name: statistics.median(values) for name, values in rows.items()}
    rates = {name: size / seconds for name, seconds in medians.items() if name != "imagekit-run"}
    return {"size": size, "rounds": rounds, "seconds": rows, "median_seconds": medians,
            "bytes_per_second": rates, "ratio": rates["imagekit"] / rates["boto3"],
            "ratio_same_parts": rates["imagekit"] / rates["boto3-parts"], "part_bytes": PART_BYTES}


def wait_for(state_dir: Path, ordinal: int, predicate: Any, what: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(imagekit("pod", "status", "--state-dir", state_dir, "--output", "json"))["pods"]
        pod = next(pod for pod in pods if pod["ordinal"] == ordinal)
        if predicate(pod):
            return dict(pod)
        if time.monotonic() > deadline:
            raise engine.BenchError(f"{what}: not reached in {timeout:.0f}s; last status {json.dumps(pod)[:1500]}")
        time.sleep(0.5)


def source_checkpointed(state_dir: Path, ordinal: int) -> bool:
    """Whether the pod's journal (in its shm) says its source is checkpointed on the SSD."""
    where = StateDir(state_dir)
    state = where.load()
    pods = PodSet(where, Engine())
    return any(entry.get("event") == contract.Event.CHECKPOINTED and entry.get("data") == "blob"
               and entry.get("tier") == contract.Source.SSD for entry in read_journal(pods, pods.blueprint(state, ordinal)))


def resume(pipeline: Path, resources: Resources, server: MotoS3, network: str, size: int, work: Path) -> dict[str, Any]:
    """Two pods; pod 1 failed (level pod) once its source is checkpointed; what its replacement downloads."""
    for shard in (0, 1):
        upload(server, f"resume-{shard}", size, resources.tempdir("upload"))
    how = engine.build_pipeline_image(pipeline, IMAGE)
    name = f"{resources.prefix}-pods"[-40:].strip("-")
    rendered, state_dir = work / "rendered", work / "state"
    imagekit("deploy", "render", pipeline, "--image", IMAGE, "--name", name, "--ssd", "local-pv", "-d", rendered,
             "--s3-secret", "s3", "--env", f"{contract.S3_ENDPOINT_URL}={server.endpoint}",
             "--env", f"{contract.S3_REGION}={FAKE_CREDENTIALS['AWS_REGION']}")
    secret = work / "s3.env"
    secret.write_text("".join(f"{key}={FAKE_CREDENTIALS[key]}\n" for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")))
    gate = state_dir / "claims" / f"pv-{name}-1" / "gates" / "hold-size"
    gate.parent.mkdir(parents=True)
    gate.touch()
    try:
        imagekit("pod", "up", rendered, "--state-dir", state_dir, "--network", network, "--secret", f"s3={secret}",
                 "--param", "OBJECT=resume")
        first = wait_for(state_dir, 1, lambda p: p["run"]["steps"].get("size") == "running"
                         and source_checkpointed(state_dir, 1), "pod 1 held with its source checkpointed")
        server.reset()
        killed_at = time.monotonic()
        imagekit("pod", "kill", "1", "--level", "pod", "--step", "size", "--state-dir", state_dir)
        # A new pod, a new shm: its journal holds the replacement's run only.
        again = wait_for(state_dir, 1, lambda p: p["run"]["started_at"] != first["run"]["started_at"]
                         and p["run"]["steps"].get("size") == "running", "the replacement of pod 1 held at size")
        back_in = time.monotonic() - killed_at
        served = server.served()
        gate.unlink()
        wait_for(state_dir, 1, lambda p: p["phase"] == "Complete", "pod 1 complete")
    finally:
        subprocess.run([sys.executable, "-m", "imagekit.cli.main", "pod", "down", "--state-dir", str(state_dir),
                        "--grace-period", "0", "--delete-data"], capture_output=True, cwd=REPO)
    return {"size": size, "built_by": how, "first_run_started": first["run"]["started"],
            "resumed_run_started": again["run"]["started"], "resumed_restored": again["run"]["restored"],
            "bytes_served_to_the_replacement": served["get_bytes"], "gets": served["gets"],
            "seconds_to_held_again": back_in}


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    import boto3
    import moto
    return {"cpu": f"{os.cpu_count()} × {cpu}", "memory": human_size(int(memory) * 1024), "kernel": platform.release(),
            "python": platform.python_version(), "boto3": boto3.__version__, "moto": moto.__version__}


def report(args: argparse.Namespace, facts: dict[str, str], measured: dict[str, Any], resumed: dict[str, Any] | None) -> str:
    size = human_size(measured["size"])
    rate = {name: value / 2**20 for name, value in measured["bytes_per_second"].items()}
    seconds = measured["median_seconds"]
    verdict = "meets" if measured["ratio"] >= TARGET_RATIO else "misses"
    lines = [
        "# Sources: pulling an object into shm",
        "",
        f"`python3 bench/bench_sources.py --size {args.size} --rounds {args.rounds} --resume-size {args.resume_size}"
        f"{' --no-pods' if args.no_pods else ''}`",
        "",
        f"Machine: {facts['cpu']}, {facts['memory']}, Linux {facts['kernel']}; Python {facts['python']}, "
        f"boto3 {facts['boto3']}, moto {facts['moto']} (its S3 server, in memory, on the host at a Docker network's "
        "gateway). The machine is shared with other work: compare the rows, measured side by side in one run "
        "(each goes first in turn), not the absolute numbers.",
        "",
        f"## Throughput: {size} from the same S3 server, medians of {measured['rounds']} rounds",
        "",
        "| | seconds (median) | MiB/s | rounds (s) |",
        "| --- | ---: | ---: | --- |",
        f"| imagekit source → shm (`imagekit run --local`, the source step's wall time) | {seconds['imagekit']:.2f} | "
        f"{rate['imagekit']:.0f} | {', '.join(f'{s:.2f}' for s in measured['seconds']['imagekit'])} |",
        f"| boto3 `download_file` → tmpfs (a process of its own, imports included) | {seconds['boto3']:.2f} | "
        f"{rate['boto3']:.0f} | {', '.join(f'{s:.2f}' for s in measured['seconds']['boto3'])} |",
        f"| boto3 `download_file`, parts of {human_size(measured['part_bytes'])} as the runtime's ranged GETs | "
        f"{seconds['boto3-parts']:.2f} | {rate['boto3-parts']:.0f} | "
        f"{', '.join(f'{s:.2f}' for s in measured['seconds']['boto3-parts'])} |",
        f"| (the whole `imagekit run`: the source's HEAD while planning, supervisord, the step that reads it) | "
        f"{seconds['imagekit-run']:.2f} | | {', '.join(f'{s:.2f}' for s in measured['seconds']['imagekit-run'])} |",
        "",
        f"Ratio of throughputs, imagekit ÷ boto3: **{measured['ratio']:.2f}** (target ≥ {TARGET_RATIO}: {verdict} it); "
        f"imagekit ÷ boto3 with the same part size: **{measured['ratio_same_parts']:.2f}**.",
        "What varied: only the client (and, in the third row, boto3's part size); the server, the object, the "
        "machine and the tmpfs were the same. moto's time per ranged GET grows with the object's size (as if it "
        "read the whole object each time), so against it larger parts are faster in themselves (boto3 alone, "
        "256 MiB: 39 MiB/s with 8 MiB parts, 67 with 16, 106 with 32): the fair comparison of the two clients is "
        "the one with equal parts.",
    ]
    if resumed is not None:
        restored = ", ".join(f"{item} (from the {tier.upper()})" for item, tier in resumed["resumed_restored"].items())
        lines += [
            "",
            f"## Resume after a pod failure ({human_size(resumed['size'])} source per shard)",
            "",
            "Two emulated pods of the same pipeline (image built by "
            f"{resumed['built_by']}); pod 1 failed at level `pod` (shm lost, SSD kept) while its step was held.",
            "",
            "| | |",
            "| --- | --- |",
            f"| steps started by the first run | {', '.join(resumed['first_run_started'])} |",
            f"| steps started by the replacement's run | {', '.join(resumed['resumed_run_started']) or '-'} |",
            f"| restored by the replacement | {restored or '-'} |",
            f"| bytes the S3 server served to the replacement | **{resumed['bytes_served_to_the_replacement']}** "
            f"({resumed['gets']} object GETs; target 0) |",
            f"| kill to the step running again | {resumed['seconds_to_held_again']:.1f} s |",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1Gi", help="the object pulled in the throughput rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--resume-size", default="64Mi", help="each shard's source in the resume")
    parser.add_argument("--no-pods", action="store_true", help="skip the resume (no image, no pods)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/bench/sources.md")
    args = parser.parse_args()
    size = parse_bytes(args.size, file=None, field="--size")
    # Every `imagekit` this runs (builds, renders, pods) is this checkout's, whatever is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(map(str, (REPO, REPO / "core", REPO / "runtime", REPO / "deploy")))
    resources = Resources()
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        network, gateway = resources.network()
        with start_moto_s3(gateway) as server, tempfile.TemporaryDirectory(prefix="imagekit-bench-sources-") as work:
            server.client().create_bucket(Bucket=BUCKET)
            pipeline = write_pipeline(max(size, parse_bytes(args.resume_size, file=None, field="--resume-size")))
            upload(server, "blob-0", size, resources.tempdir("upload"))
            measured = throughput(pipeline, resources, server, size, args.rounds)
            resumed = None if args.no_pods else resume(pipeline, resources, server, network,
                                                      parse_bytes(args.resume_size, file=None, field="--resume-size"),
                                                      Path(work))
        text = report(args, machine(), measured, resumed)
        (OUT / "sources-raw.json").write_text(json.dumps({"throughput": measured, "resume": resumed}, indent=2))
        print(text)
        if not args.no_write:
            DOC.write_text(text)
            log(f"bench: wrote {DOC.relative_to(REPO)}")
    finally:
        resources.cleanup()


if __name__ == "__main__":
    main()
