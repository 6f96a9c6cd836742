"""The pod pipeline against the two other paradigms, side by side in one run (medians of rounds).

    python3 bench/bench_paradigms.py [--sizes 64,256,1024] [--rounds 3] [--quick]

1. Handoff of D MiB from a producer step (writes D bytes) to a consumer step (reads and checksums them):
   (a) imagekit: both steps in one container of an image built by `imagekit build`, through shm;
   (b) services: two long-running containers on a Docker network of our own, D sent over HTTP;
   (c) functions: each step a fresh container, D through a store: a Docker volume on local disk, and an
       S3 server (moto, on the host at our network's gateway) when installed;
   (d) the floor: the producer writing D bytes to tmpfs, nothing else.
   The handoff is measured the same way in every paradigm, from timestamps taken inside the steps: from
   the producer's output being complete (written to shm in (a); in its own memory elsewhere) to the
   consumer holding all of its input (mapped from shm in (a); received or loaded into its memory
   elsewhere). For (a) it is split into phases with the runtime's journal.
2. Step launch: 20 trivial steps in a chain, the runtime (in its container, and on the host) against one
   `docker run` per step.
3. Runtime memory: VmRSS/VmHWM of the conductor and supervisord, sampled from /proc during the runs.
4. Profiles of what misses a target.

Writes docs/bench/results.md and docs/bench/handoff.png; prints the tables. Everything it creates in
Docker (containers, one network, one volume) is named imagekit-bench-<pid>-… and removed at the end.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "paradigms"))
sys.path.insert(0, str(REPO / "runtime"))
sys.path.insert(0, str(REPO / "core"))

import net  # noqa: E402
import work  # noqa: E402  (bench/paradigms/work.py: the same code the containers run)

from imagekit_core import contract  # noqa: E402
from paradigms import chains, engine, pipelines, report  # noqa: E402
from paradigms.engine import HANDOFF_COLD_IMAGE, HANDOFF_IMAGE, LAUNCH_IMAGE, LAUNCH_WARM_IMAGE, TOOLS_IMAGE, BenchError, docker, log  # noqa: E402
from paradigms.output import rerender, write_results  # noqa: E402
from paradigms.procmem import MemorySampler  # noqa: E402
from paradigms.readings import parse_bench_line, read_journal, transition_ts  # noqa: E402

MIB = 1 << 20
OUT = HERE / "out"
PARADIGMS = ("imagekit", "imagekit-cold", "services", "volume", "s3", "floor")
LAUNCH_STEPS = 20


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = [int(s) for s in args.sizes.split(",")]
        self.resources = engine.Resources()
        self.records: list[dict] = []
        self.launch: list[dict] = []
        self.memory: list[dict] = []
        self.expected: dict[int, int] = {}
        self.notes: list[str] = []
        self.meta: dict = {}
        self.scaling: list[dict] = []
        self.idle: dict = {}

    # ------------------------------------------------------------- setup
    def setup(self) -> None:
        if docker("info", "--format", "{{.ServerVersion}}", check=False).returncode != 0:
            raise SystemExit("bench: the docker engine does not answer: run scripts/bootstrap.sh")
        if docker("image", "inspect", engine.BASE_IMAGE, check=False).returncode != 0:
            raise SystemExit(f"bench: base image {engine.BASE_IMAGE} missing: run scripts/bootstrap.sh")
        started = time.monotonic()
        handoff = pipelines.write_handoff(OUT / "pipelines" / "handoff")
        handoff_cold = pipelines.write_handoff(OUT / "pipelines" / "handoff-cold", warm=False)
        launch = pipelines.write_launch(OUT / "pipelines" / "launch20", LAUNCH_STEPS)
        launch_warm = pipelines.write_launch(OUT / "pipelines" / "launch20-warm", LAUNCH_STEPS, warm=True)
        self.launch_pipelines = {False: launch, True: launch_warm}
        self.meta["built_with"] = engine.build_pipeline_image(handoff, HANDOFF_IMAGE)
        engine.build_pipeline_image(handoff_cold, HANDOFF_COLD_IMAGE)
        engine.build_pipeline_image(launch, LAUNCH_IMAGE)
        engine.build_pipeline_image(launch_warm, LAUNCH_WARM_IMAGE)
        engine.build_tools_image()
        log(f"bench: images built ({self.meta['built_with']}) in {time.monotonic() - started:.1f}s")
        self.network, self.gateway = self.resources.network()
        self.volume, self.volume_dir = self.resources.volume()
        self.s3, self.meta["store"] = (None, "skipped (--no-s3)") if self.args.no_s3 else \
            engine.start_object_store(self.resources, self.gateway)
        if self.s3 is None:
            self.notes.append(self.meta["store"])
        common = ["--network", self.network, "--entrypoint", "python3", TOOLS_IMAGE]
        self.consumer = self.resources.container("consumer", *common, "/opt/bench/work.py", "serve-consumer", "8080")
        self.producer = self.resources.container("producer", *common, "/opt/bench/work.py", "serve-producer", "8080")
        for name in (self.consumer, self.producer):
            engine.wait_for_log(name, "listening")
        self.producer_url = f"http://{engine.container_address(self.producer, self.network)}:8080"
        for size in self.sizes:
            self.expected[size * MIB] = work.expected_crc(size * MIB)

    def check(self, paradigm: str, size: int, result: dict) -> None:
        if result.get("crc") != self.expected[size] or result.get("bytes") != size:
            raise BenchError(f"{paradigm}: consumer saw {result.get('bytes')} bytes, crc {result.get('crc')}; "
                             f"expected {size}, {self.expected[size]}")

    # ------------------------------------------------------------ handoff
    def run_imagekit(self, size: int, warm: bool = True) -> dict:
        """(a): the built image, both steps, shm as the container's /dev/shm tmpfs; journal and logs land in a
        host tmpfs directory so they can be read after the container is gone. The consumer is warm (waiting
        at its gate when the producer ends), or cold (started once the blob is committed)."""
        run = self.resources.tempdir("a")
        shm = max(size, 2 << 30) + 256 * MIB  # the pipeline declares shm: 2Gi, and the preflight checks it fits
        name = self.resources.container(
            "imagekit", "--shm-size", str(shm), "-v", f"{run}:/bench", "--network", self.network,
            HANDOFF_IMAGE if warm else HANDOFF_COLD_IMAGE,
            "--run-dir", "/bench/run", "--results", "/bench/results", "--ssd", "/tmp/ssd", "--pv", "/tmp/pv",
            "--no-checkpoints", "--output", "json", "--param", f"BENCH_BYTES={size}")
        sampler = self._sample(name)
        status = docker("wait", name).stdout.strip()
        memory = sampler.stop() if sampler else None
        logs = docker("logs", name)
        self.resources.remove_container(name)
        if status != "0":
            raise BenchError(f"imagekit handoff exited {status}: {logs.stderr[-1500:]}")
        produced = parse_bench_line((run / contract.RUN_DIR_NAME / contract.LOGS_DIR / "producer.log").read_text())
        consumed = parse_bench_line((run / contract.RUN_DIR_NAME / contract.LOGS_DIR / "consumer.log").read_text())
        journal = read_journal(run / contract.RUN_DIR_NAME / contract.JOURNAL_FILE)
        shutil.rmtree(run, ignore_errors=True)
        paradigm = "imagekit" if warm else "imagekit-cold"
        self.check(paradigm, size, consumed)
        committing = transition_ts(journal, "producer", "committing")
        committed = transition_ts(journal, "producer", "committed")
        started = transition_ts(journal, "consumer", "running")
        record = self._record(paradigm, size, produced, consumed)
        record["phases"] = {
            "exit seen (producer end → committing)": committing - produced["produce_end"],
            "commit (committing → committed)": committed - committing,
        }
        if warm:  # the gate opens before `running` is journaled: the consumer may wake first
            record["phases"].update({
                "schedule (committed → consumer past its gate)": consumed["woke"] - committed,
                "map (past its gate → input mapped)": consumed["ready"] - consumed["woke"],
            })
            record["warm_ahead"] = started - consumed["launched"]  # how long the consumer was up before
        else:
            record["phases"].update({
                "schedule (committed → consumer running)": started - committed,
                "spawn (running → consumer's first line)": consumed["launched"] - started,
                "step start-up (first line → input mapped)": consumed["ready"] - consumed["launched"],
            })
        if memory:
            self._memory(f"handoff in container{'' if warm else ', cold'}", size, memory,
                         json.loads(logs.stdout)["wall_seconds"])
        return record

    def run_services(self, size: int) -> dict:
        url = f"{self.producer_url}/run?size={size}&to={self.consumer}:8080"
        with urllib.request.urlopen(url, timeout=600) as response:
            result = json.loads(response.read())
        self.check("services", size, result)
        return self._record("services", size, result, result)

    def run_volume(self, size: int) -> dict:
        common = ["run", "--rm", "--network", self.network, "-v", f"{self.volume}:/store", TOOLS_IMAGE,
                  "python3", "/opt/bench/work.py"]
        produced = parse_bench_line(docker(*common, "store", "/store/blob", str(size)).stdout)
        consumed = parse_bench_line(docker(*common, "load", "/store/blob", str(size)).stdout)
        (self.volume_dir / "blob").unlink(missing_ok=True)
        self.check("volume", size, consumed)
        return self._record("volume", size, produced, consumed)

    def run_s3(self, size: int) -> dict:
        key = f"blob-{size}"
        assert self.s3 is not None, "run_s3 runs only with a store (see handoff's order)"
        common = ["run", "--rm", "--network", self.network, TOOLS_IMAGE, "python3", "/opt/bench/work.py"]
        produced = parse_bench_line(docker(*common, "s3-put", self.s3, engine.BUCKET, key, str(size)).stdout)
        consumed = parse_bench_line(docker(*common, "s3-get", self.s3, engine.BUCKET, key, str(size)).stdout)
        net.s3_simple(self.s3, "DELETE", f"/{engine.BUCKET}/{key}")
        self.check("s3", size, consumed)
        return self._record("s3", size, produced, consumed)

    def run_floor(self, size: int) -> dict:
        result = parse_bench_line(docker("run", "--rm", "--network", self.network, "--shm-size", str(size + 256 * MIB),
                                         TOOLS_IMAGE, "python3", "/opt/bench/work.py", "floor", "/dev/shm",
                                         str(size)).stdout)
        self.check("floor", size, result)
        record = self._record("floor", size, result, result)
        record.update(first_pass=result["first_pass"], mapped_pass=result["mapped_pass"],
                      mapping=result["first_pass"] - result["mapped_pass"])
        return record

    @staticmethod
    def _record(paradigm: str, size: int, produced: dict, consumed: dict) -> dict:
        """produce: the producer's work; handoff: its output complete → the consumer holding all of its input;
        consume: the consumer's checksum; total: producer start → consumer end."""
        return {
            "paradigm": paradigm, "size": size,
            "produce": produced["produce_end"] - produced["produce_start"],
            "handoff": consumed["ready"] - produced["produce_end"],
            "consume": consumed["consume_end"] - consumed["ready"],
            "total": consumed["consume_end"] - produced["produce_start"],
        }

    def handoff(self) -> None:
        runners = {"imagekit": self.run_imagekit, "imagekit-cold": lambda size: self.run_imagekit(size, warm=False),
                   "services": self.run_services, "volume": self.run_volume, "s3": self.run_s3, "floor": self.run_floor}
        order = [p for p in PARADIGMS if p != "s3" or self.s3]
        for round_number in range(self.args.rounds):
            rotated = order[round_number % len(order):] + order[:round_number % len(order)]
            for size_mib in self.sizes:
                for paradigm in rotated:
                    record = runners[paradigm](size_mib * MIB)
                    record["round"] = round_number
                    self.records.append(record)
                    log(f"bench: round {round_number + 1}/{self.args.rounds} {size_mib:>5} MiB {paradigm:<9} "
                        f"handoff {record['handoff'] * 1000:8.1f} ms (produce {record['produce'] * 1000:7.1f}, "
                        f"consume {record['consume'] * 1000:7.1f}, total {record['total'] * 1000:7.1f})")

    # ------------------------------------------------------------- launch
    def launch_in_container(self, warm: bool = False) -> dict:
        run = self.resources.tempdir("launch")
        started = time.perf_counter()
        name = self.resources.container(
            "launch", "--shm-size", str(256 * MIB), "-v", f"{run}:/bench", "--network", self.network,
            LAUNCH_WARM_IMAGE if warm else LAUNCH_IMAGE,
            "--run-dir", "/bench/run", "--results", "/bench/results", "--ssd", "/tmp/ssd", "--pv", "/tmp/pv",
            "--no-checkpoints", "--output", "json")
        sampler = self._sample(name)
        status = docker("wait", name).stdout.strip()
        wall = time.perf_counter() - started
        memory = sampler.stop() if sampler else None
        logs = docker("logs", name)
        self.resources.remove_container(name)
        if status != "0":
            raise BenchError(f"imagekit launch pipeline exited {status}: {logs.stderr[-1500:]}")
        summary = json.loads(logs.stdout)
        journal = read_journal(run / contract.RUN_DIR_NAME / contract.JOURNAL_FILE)
        shutil.rmtree(run, ignore_errors=True)
        suffix = ", warm" if warm else ""
        if memory:
            self._memory(f"{LAUNCH_STEPS} steps in container{suffix}", 0, memory, summary["wall_seconds"])
        return {"mode": f"imagekit in container{suffix}", "runtime": summary["wall_seconds"], "wall": wall,
                **self._launch_intervals(journal)}

    def launch_on_host(self, profile: Path | None = None, warm: bool = False) -> dict:
        run = self.resources.tempdir("host")
        command = [sys.executable, *(["-m", "cProfile", "-o", str(profile)] if profile else []),
                   "-m", "imagekit_runtime", "run", str(self.launch_pipelines[warm]), "--shm-dir", str(run / "shm"),
                   "--ssd", str(run / "ssd"), "--pv", str(run / "pv"), "--results", str(run / "results"),
                   "--no-checkpoints", "--output", "json"]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "runtime"), str(REPO / "core")])})
        sampler = MemorySampler(process.pid).start()
        stdout, stderr = process.communicate(timeout=300)
        wall = time.perf_counter() - started
        sampler.stop()
        if process.returncode != 0:
            raise BenchError(f"imagekit launch pipeline on the host exited {process.returncode}: {stderr[-1500:]}")
        summary = json.loads(stdout)
        run_dir = run / "shm" / pipelines.launch_name(LAUNCH_STEPS, warm) / contract.shard_dir_name(0) / \
            contract.RUN_DIR_NAME
        journal = read_journal(run_dir / contract.JOURNAL_FILE)
        shutil.rmtree(run, ignore_errors=True)
        suffix = ", warm" if warm else ""
        if not profile:
            self._memory(f"{LAUNCH_STEPS} steps on host{suffix}", 0, sampler, summary["wall_seconds"])
        return {"mode": f"imagekit on host{suffix}", "runtime": summary["wall_seconds"], "wall": wall,
                **self._launch_intervals(journal)}

    @staticmethod
    def _launch_intervals(journal: list[dict]) -> dict:
        names = pipelines.launch_step_names(LAUNCH_STEPS)
        running = [transition_ts(journal, n, "running") for n in names]
        committed = [transition_ts(journal, n, "committed") for n in names]
        start = journal[0]["ts"]
        return {"first_step_after": running[0] - start,
                "steps_span": committed[-1] - running[0],
                "per_step": statistics.median(b - a for a, b in itertools.pairwise(running))}

    def launch_docker(self) -> dict:
        walls = []
        for index in range(1, LAUNCH_STEPS + 1):
            started = time.perf_counter()
            docker("run", "--rm", "--network", self.network, "-v", f"{self.volume}:/data", "--entrypoint", "/bin/sh",
                   TOOLS_IMAGE, "-c", pipelines.trivial_command(index, "/data/d{index:02d}"))
            walls.append(time.perf_counter() - started)
        for index in range(1, LAUNCH_STEPS + 1):
            (self.volume_dir / f"d{index:02d}").unlink(missing_ok=True)
        return {"mode": "docker run per step", "runtime": sum(walls), "wall": sum(walls),
                "per_step": statistics.median(walls), "steps_span": sum(walls), "first_step_after": 0.0}

    def launches(self) -> None:
        for round_number in range(self.args.rounds):
            modes = [self.launch_in_container, lambda: self.launch_in_container(warm=True), self.launch_on_host,
                     lambda: self.launch_on_host(warm=True), self.launch_docker]
            modes = modes[round_number % len(modes):] + modes[:round_number % len(modes)]
            for measure in modes:
                result = measure()
                result["round"] = round_number
                self.launch.append(result)
                log(f"bench: round {round_number + 1}/{self.args.rounds} {LAUNCH_STEPS} steps, {result['mode']:<28} "
                    f"{result['runtime']:6.2f} s (per step {result['per_step'] * 1000:6.1f} ms)")

    # ------------------------------------------------------------- memory
    def _sample(self, container: str) -> MemorySampler | None:
        pid = int(docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip() or 0)
        return MemorySampler(pid).start() if pid else None

    def _memory(self, label: str, size: int, sampler: MemorySampler, runtime_seconds: float) -> None:
        self.memory.append({"label": label, "size": size, "runtime_seconds": runtime_seconds,
                            "conductor": dict(sampler.conductor.max), "supervisord": dict(sampler.supervisord.max),
                            "conductor_cpu": sampler.conductor.cpu_seconds,
                            "supervisord_cpu": sampler.supervisord.cpu_seconds,
                            "samples": sampler.conductor.samples})

    # ------------------------------------------------------------ profile
    def profile(self) -> dict:
        """Where the runtime's time and memory go: a cProfile of the conductor over the 20-step chain on the
        host, per-step phases from a chain whose steps print when they start, and the RSS of the runtime's
        imports in the image."""
        profile_file = OUT / "conductor.prof"
        OUT.mkdir(parents=True, exist_ok=True)
        self.launch_on_host(profile=profile_file)
        phases = chains.stamped_phases(self.resources, LAUNCH_STEPS)
        imports = json.loads(docker("run", "--rm", "--network", "none", "--entrypoint", "python3", LAUNCH_IMAGE, "-c",
                                    report.IMPORT_RSS_SCRIPT).stdout)
        rpc = json.loads(docker("run", "--rm", "--network", "none", TOOLS_IMAGE, "python3",
                                "/opt/bench/rpcprobe.py").stdout)
        return {"cprofile": report.cprofile_top(profile_file), "phases": phases, "imports": imports, "rpc": rpc}

    # --------------------------------------------------------------- main
    def run(self) -> None:
        began = time.monotonic()
        try:
            self.setup()
            self.handoff()
            self.launches()
            self.scaling = chains.scaling(self.resources, chains.SCALING_STEPS if not self.args.quick else (20, 50),
                                          1 if self.args.quick else self.args.rounds)
            self.idle = chains.idle_cpu(self.resources, 4 if self.args.quick else 10)
            profile = self.profile() if not self.args.quick else None
        finally:
            self.resources.cleanup()
        self.meta["seconds"] = time.monotonic() - began
        self.meta["notes"] = self.notes
        results = report.Results(sizes=self.sizes, rounds=self.args.rounds, records=self.records, launch=self.launch,
                                 memory=self.memory, profile=profile, notes=self.notes, meta=self.meta,
                                 command=" ".join(["python3", "bench/bench_paradigms.py", *sys.argv[1:]]),
                                 scaling=self.scaling, idle=self.idle)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "paradigms-raw.json").write_text(json.dumps(
            {"records": self.records, "launch": self.launch, "memory": self.memory, "profile": profile,
             "scaling": self.scaling, "idle": self.idle,
             "meta": self.meta, "machine": results.machine, "date": results.date, "command": results.command,
             "sizes": self.sizes, "rounds": self.args.rounds, "quick": self.args.quick}, indent=1, default=str))
        write_results(results, self.args)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like ^C: the finally clause removes what the run created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="64,256,1024", help="handoff sizes in MiB (default 64,256,1024)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="64 MiB, 1 round, no profile: a smoke run (< 2 min); writes to bench/out/quick/")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 store (moto)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no results.md or plot")
    parser.add_argument("--rerender", type=Path, metavar="RAW_JSON",
                        help="measure nothing: write results.md and the plot again from a run's "
                             "bench/out/paradigms-raw.json")
    args = parser.parse_args()
    if args.rerender:
        return rerender(args.rerender, args)
    if args.quick:
        args.sizes, args.rounds = "64", 1
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        Bench(args).run()
    except BenchError as exc:
        raise SystemExit(f"bench: error: {exc}") from None
    except KeyboardInterrupt:
        log("bench: interrupted; the containers, network and volume it made are removed")
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
