"""Numbers to tables, docs/bench/results.md and the plot; the machine's description; profile helpers."""
from __future__ import annotations

import os
import platform
import pstats
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1 << 20
LABELS = {
    "imagekit": "(a) imagekit: one container, shm, warm consumer",
    "imagekit-cold": "(a) imagekit, cold consumer (not warm)",
    "services": "(b) services: 2 containers, HTTP",
    "volume": "(c) functions: container per step, volume",
    "s3": "(c) functions: container per step, S3 (moto)",
    "floor": "(d) floor: produce to tmpfs",
}
SHORT = {"imagekit": "(a) imagekit", "imagekit-cold": "(a) cold", "services": "(b) services/HTTP", "volume": "(c) functions/volume",
         "s3": "(c) functions/S3", "floor": "(d) floor"}
COLORS = {"imagekit": "tab:green", "imagekit-cold": "tab:olive", "services": "tab:red", "volume": "tab:orange", "s3": "tab:purple",
          "floor": "black"}
DATA_PHASES = ("commit ", "schedule ")  # the phases (by name) that are the data's part of a handoff


def is_data_phase(name: str) -> bool:
    return name.startswith(DATA_PHASES)


def data_part(phases: dict[str, float]) -> float:
    return sum(value for name, value in phases.items() if is_data_phase(name))
TARGETS = {"flat": 1.5, "vs_services": 1000.0, "launch": 20.0, "rss_mib": 40.0, "handoff_ms": 1.0,
           "warm_step_ms": 2.0, "vs_docker_step": 150.0, "scaling": 2.0, "idle_core": 0.005}
WARM_CHAIN = "imagekit in container, warm"
LAUNCH_MODES = ("imagekit in container", WARM_CHAIN, "imagekit on host", "imagekit on host, warm", "docker run per step")

# Run in the image: the resident memory of a fresh interpreter after the imports of each runtime process.
IMPORT_RSS_SCRIPT = r"""
import json, subprocess, sys
probe = ("import sys\n{imports}\n"
         "s = {{l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(('VmRSS', 'RssAnon', 'RssFile'))}}\n"
         "print(s['VmRSS'], s['RssAnon'], s['RssFile'], len(sys.modules))")
rows = []
for label, imports in (
    ("python3 -c pass (bare interpreter)", ""),
    ("+ http.client (xmlrpc.client's transport: email.*, ssl)", "import http.client"),
    ("+ xmlrpc.client", "import xmlrpc.client"),
    ("+ yaml", "import xmlrpc.client, yaml"),
    ("+ hashlib (OpenSSL's libcrypto: content keys, checksums)", "import xmlrpc.client, yaml, hashlib"),
    ("conductor: import imagekit_runtime.main (all of the above and the runtime)", "import imagekit_runtime.main"),
    ("supervisor's own entry point: from supervisor.supervisord import main", "from supervisor.supervisord import main"),
    ("supervisord as the runtime starts it (imagekit_runtime.supervise.supervisord: no pkg_resources)",
     "from imagekit_runtime.supervise.supervisord import install_pkg_resources_shim; install_pkg_resources_shim(); "
     "from supervisor.supervisord import main"),
):
    out = subprocess.run([sys.executable, "-c", probe.format(imports=imports)], capture_output=True, text=True, check=True)
    rss, anon, file, modules = map(int, out.stdout.split())
    rows.append({"label": label, "rss_kib": rss, "anon_kib": anon, "file_kib": file, "modules": modules})
print(json.dumps(rows))
"""


def cprofile_top(path: Path, count: int = 14) -> dict:
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, function), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]  # not in typeshed
        name = f"{Path(filename).name}:{line}({function})" if line else function
        rows.append({"function": name, "calls": calls, "tottime": tottime, "cumtime": cumtime})
    sleep = sum(r["tottime"] for r in rows if "time.sleep" in r["function"])
    sleeps = sum(r["calls"] for r in rows if "time.sleep" in r["function"])
    by_tottime = sorted(rows, key=lambda r: r["tottime"], reverse=True)[:count]
    rpc = {r["function"].split("(")[1].rstrip(")"): {"calls": r["calls"], "cumtime": r["cumtime"]}
           for r in rows if r["function"].startswith("supervisor_client.py") and
           any(f"({name})" in r["function"] for name in ("all_info", "process_info", "start_process", "start"))}
    return {"total": stats.total_tt, "sleep": sleep, "sleeps": sleeps, "top": by_tottime,  # type: ignore[attr-defined]  # total_tt: not in typeshed
            "rpc": rpc}


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def _version(package: str) -> str:
    try:
        from importlib.metadata import version
        return version(package)
    except Exception:
        return "?"


def machine() -> dict[str, str]:
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        memory = int(info.readline().split()[1]) * 1024
    os_name = "?"
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    docker_root = _run(["docker", "info", "--format", "{{.DockerRootDir}}"]) or "/var/lib/docker"
    disk = _run(["df", "--output=source,fstype", docker_root]).splitlines()[-1:]
    return {
        "cpu": f"{os.cpu_count()} vCPU, {cpu}",
        "memory": f"{memory / (1 << 30):.1f} GiB RAM, no swap" if "SwapTotal:       0" in open("/proc/meminfo").read()
        else f"{memory / (1 << 30):.1f} GiB RAM",
        "os": f"{os_name}, kernel {platform.release()}",
        "docker": f"Docker Engine {_run(['docker', 'info', '--format', '{{.ServerVersion}}'])}, storage driver "
                  f"{_run(['docker', 'info', '--format', '{{.Driver}}'])}, volumes on {' '.join(disk[0].split()) if disk else '?'}",
        "python": f"host CPython {platform.python_version()} with supervisor {_version('supervisor')}; images: Debian "
                  "bookworm CPython 3.11.2 with Debian's supervisor 4.2.5",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    milliseconds = seconds * 1000
    if abs(milliseconds) >= 100:
        return f"{milliseconds:.0f}"
    return f"{milliseconds:.1f}" if abs(milliseconds) >= 1 else f"{milliseconds:.2f}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}×" if abs(value) >= 10 else f"{value:.1f}×"


def least_squares_slope(sizes_mib: list[int], values: list[float | None]) -> float | None:
    """Growth of values per GiB of size (least squares), ignoring missing values."""
    points = [(size / 1024, value) for size, value in zip(sizes_mib, values, strict=True) if value is not None]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / denominator if denominator else None


def size_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib >= 1024 and mib % 1024 == 0 else f"{mib} MiB"


@dataclass
class Results:
    sizes: list[int]
    rounds: int
    records: list[dict]
    launch: list[dict]
    memory: list[dict]
    profile: dict | None
    notes: list[str]
    meta: dict
    command: str
    scaling: list[dict] = field(default_factory=list)  # chains.scaling: chains of 20, 100, 200 steps on the host
    idle: dict = field(default_factory=dict)  # chains.idle_cpu: the runtime's CPU while one step sleeps
    machine: dict[str, str] = field(default_factory=machine)
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))

    # ---------------------------------------------------------- numbers
    def paradigms(self) -> list[str]:
        return [p for p in LABELS if any(r["paradigm"] == p for r in self.records)]

    def _values(self, paradigm: str, size_mib: int, key: str) -> list[float]:
        return [r[key] for r in self.records if r["paradigm"] == paradigm and r["size"] == size_mib * MIB]

    def median(self, paradigm: str, size_mib: int, key: str) -> float | None:
        values = self._values(paradigm, size_mib, key)
        return statistics.median(values) if values else None

    def floors(self, size_mib: int) -> tuple[float, float]:
        """(d): (producing D into tmpfs, checksumming D mapped from tmpfs)."""
        return self.median("floor", size_mib, "produce") or 0.0, self.median("floor", size_mib, "consume") or 0.0

    def overhead(self, paradigm: str, size_mib: int) -> float | None:
        """Median over rounds of the handoff: producer's output complete → consumer holding all its input."""
        if paradigm == "floor":
            return None
        return self.median(paradigm, size_mib, "handoff")

    def ratio(self, paradigm: str, size_mib: int) -> float | None:
        """The paradigm's handoff ÷ (a)'s (the warm consumer's)."""
        mine, base = self.overhead(paradigm, size_mib), self.overhead("imagekit", size_mib)
        return mine / base if mine is not None and base else None

    def slope(self, paradigm: str) -> float | None:
        """Least-squares growth of the overhead, seconds per GiB."""
        return least_squares_slope(self.sizes, [self.overhead(paradigm, s) for s in self.sizes])

    def growth(self, paradigm: str) -> float | None:
        first, last = self.overhead(paradigm, self.sizes[0]), self.overhead(paradigm, self.sizes[-1])
        return last / first if first and last is not None and len(self.sizes) > 1 else None

    def phases(self, size_mib: int, paradigm: str = "imagekit") -> dict[str, float]:
        rows = [r["phases"] for r in self.records if r["paradigm"] == paradigm and r["size"] == size_mib * MIB]
        return {key: statistics.median(row[key] for row in rows) for key in rows[0]} if rows else {}

    def launch_median(self, mode: str, key: str) -> float | None:
        values = [r[key] for r in self.launch if r["mode"] == mode]
        return statistics.median(values) if values else None

    def scaling_median(self, steps: int, key: str) -> float | None:
        values = [r[key] for r in self.scaling if r["steps"] == steps]
        return statistics.median(values) if values else None

    def scaling_counts(self) -> list[int]:
        return sorted({r["steps"] for r in self.scaling})

    def memory_peak(self, process: str, key: str, label_prefix: str = "") -> int:
        return max((m[process].get(key, 0) for m in self.memory if m["label"].startswith(label_prefix)), default=0)

    def targets(self) -> list[tuple[str, str, bool | None]]:
        rows: list[tuple[str, str, bool | None]] = []
        largest = self.sizes[-1]
        growth, slope = self.growth("imagekit"), self.slope("imagekit")
        if growth is not None:
            rows.append((f"(a) overhead flat in D (at {size_label(largest)} ≤ {TARGETS['flat']}× "
                         f"what it is at {size_label(self.sizes[0])})",
                         f"{fmt_ratio(growth)} ({fmt_ms(self.overhead('imagekit', self.sizes[0]))} → "
                         f"{fmt_ms(self.overhead('imagekit', largest))} ms; slope {fmt_ms(slope)} ms/GiB)",
                         growth <= TARGETS["flat"]))
        else:
            rows.append(("(a) overhead flat in D", "needs two sizes or more", None))
        ratio = self.ratio("services", largest)
        rows.append((f"(a) ≥ {TARGETS['vs_services']:.0f}× below (b) at {size_label(largest)}", fmt_ratio(ratio),
                     None if ratio is None else ratio >= TARGETS["vs_services"]))
        handoffs = {s: self.overhead("imagekit", s) for s in self.sizes}
        worst = max((v for v in handoffs.values() if v is not None), default=None)
        rows.append((f"(a) handoff ≤ {TARGETS['handoff_ms']:.0f} ms median at every size (warm consumer)",
                     ", ".join(f"{size_label(s)} {fmt_ms(v)} ms" for s, v in handoffs.items()),
                     None if worst is None else worst <= TARGETS["handoff_ms"] / 1000))
        docker_total = self.launch_median("docker run per step", "runtime")
        runtime = self.launch_median("imagekit in container", "runtime")
        launch_ratio = docker_total / runtime if docker_total and runtime else None
        rows.append((f"20-step runtime overhead ≥ {TARGETS['launch']:.0f}× below container-per-step (cold steps, "
                     "whole run)", fmt_ratio(launch_ratio), None if launch_ratio is None else launch_ratio >= TARGETS["launch"]))
        warm_step, docker_step = self.launch_median(WARM_CHAIN, "per_step"), self.launch_median("docker run per step", "per_step")
        rows.append((f"20-step chain of warm steps in container: ≤ {TARGETS['warm_step_ms']:.0f} ms per step",
                     f"{fmt_ms(warm_step)} ms", None if warm_step is None else warm_step <= TARGETS["warm_step_ms"] / 1000))
        step_ratio = docker_step / warm_step if docker_step and warm_step else None
        rows.append((f"… and ≥ {TARGETS['vs_docker_step']:.0f}× below `docker run` per step", fmt_ratio(step_ratio),
                     None if step_ratio is None else step_ratio >= TARGETS["vs_docker_step"]))
        counts = self.scaling_counts()
        if len(counts) > 1:
            first, last = self.scaling_median(counts[0], "per_step"), self.scaling_median(counts[-1], "per_step")
            growth = last / first if first and last else None
            rows.append((f"per step at {counts[-1]} steps ≤ {TARGETS['scaling']:.0f}× per step at {counts[0]} (host, cold)",
                         f"{fmt_ratio(growth)} ({fmt_ms(first)} → {fmt_ms(last)} ms)",
                         None if growth is None else growth <= TARGETS["scaling"]))
        if self.idle:
            share = self.idle["per_run_second"]
            rows.append((f"conductor + supervisord while one step sleeps ≤ {100 * TARGETS['idle_core']:.1f} % of a core",
                         f"{100 * share:.2f} % ({share:.4f} CPU-s per run-s)", share <= TARGETS["idle_core"]))
        total = (self.memory_peak("conductor", "VmHWM") + self.memory_peak("supervisord", "VmHWM")) / MIB
        rows.append((f"runtime RSS (conductor + supervisord, peak VmHWM) ≤ {TARGETS['rss_mib']:.0f} MiB",
                     f"{total:.1f} MiB", total <= TARGETS["rss_mib"] if total else None))
        pss = (self.memory_peak("conductor", "Pss") + self.memory_peak("supervisord", "Pss")) / MIB
        rows.append((f"runtime summed Pss (conductor + supervisord, peak; shared pages split) ≤ {TARGETS['rss_mib']:.0f} MiB",
                     f"{pss:.1f} MiB", pss <= TARGETS["rss_mib"] if pss else None))
        return rows

    # ----------------------------------------------------------- output
    def table(self) -> str:
        lines = [f"handoff, ms: producer's output complete → consumer holds all its input (median of {self.rounds}):"]
        header = f"  {'paradigm':<46}" + "".join(f"{size_label(s):>10}" for s in self.sizes) + \
            f"{'ms/GiB':>9}" + "".join(f"{'÷(a) ' + size_label(s):>13}" for s in self.sizes)
        lines.append(header)
        for paradigm in self.paradigms():
            if paradigm == "floor":
                cells = "".join(f"{fmt_ms(self.floors(s)[0]):>10}" for s in self.sizes)
                lines.append(f"  {LABELS[paradigm] + ' (work, not handoff)':<46}{cells}")
                continue
            cells = "".join(f"{fmt_ms(self.overhead(paradigm, s)):>10}" for s in self.sizes)
            ratios = "".join(f"{fmt_ratio(self.ratio(paradigm, s)):>13}" for s in self.sizes)
            lines.append(f"  {LABELS[paradigm]:<46}{cells}{fmt_ms(self.slope(paradigm)):>9}{ratios}")
        lines.append("")
        lines.append("step launch, 20 trivial steps in a chain (median):")
        lines.append(f"  {'':<30}{'total s':>9}{'per step ms':>13}{'÷ imagekit':>12}")
        base = self.launch_median("imagekit in container", "runtime")
        for mode in LAUNCH_MODES:
            total = self.launch_median(mode, "runtime")
            if total is None:
                continue
            per_step = self.launch_median(mode, "per_step")
            lines.append(f"  {mode:<30}{total:>9.2f}{fmt_ms(per_step):>13}{fmt_ratio(total / base if base else None):>12}")
        lines.append("")
        if self.scaling:
            lines.append("chains on the host, cold steps (median): steps, total s, per step ms (total ÷ steps), "
                         "step to step ms")
            for count in self.scaling_counts():
                lines.append(f"  {count:>5}{self.scaling_median(count, 'runtime'):>9.2f}"
                             f"{fmt_ms(self.scaling_median(count, 'per_step')):>13}"
                             f"{fmt_ms(self.scaling_median(count, 'step_to_step')):>13}")
            lines.append("")
        if self.idle:
            lines.append(f"runtime CPU while one step sleeps: {self.idle['conductor'] + self.idle['supervisord']:.2f} "
                         f"CPU-s in {self.idle['seconds']:.1f} s = {self.idle['per_run_second']:.4f} CPU-s per run-s")
            lines.append("")
        lines.append("runtime memory, peak over all runs (MiB): VmRSS / VmHWM / RssAnon")
        for process in ("conductor", "supervisord"):
            lines.append(f"  {process:<12}" + " / ".join(f"{self.memory_peak(process, k) / MIB:.1f}"
                                                       for k in ("VmRSS", "VmHWM", "RssAnon")))
        lines.append("")
        lines.append("targets:")
        for name, value, met in self.targets():
            lines.append(f"  {'met   ' if met else 'MISSED' if met is False else 'n/a   '} {name}: {value}")
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
        sizes = self.sizes
        for paradigm in self.paradigms():
            if paradigm == "floor":
                left.plot(sizes, [self.floors(s)[0] for s in sizes], "k--", marker="o",
                          label="(d) floor: produce D to tmpfs")
                left.plot(sizes, [sum(self.floors(s)) for s in sizes], "k:", marker=".",
                          label="floor + checksum from tmpfs, no handoff")
                continue
            totals = [self.median(paradigm, s, "total") for s in sizes]
            left.plot(sizes, totals, marker="o", color=COLORS[paradigm], label=LABELS[paradigm])
            overheads = [self.overhead(paradigm, s) for s in sizes]
            right.plot(sizes, [o * 1000 if o is not None and o > 0 else float("nan") for o in overheads], marker="o",
                       color=COLORS[paradigm], label=SHORT[paradigm])
            if paradigm == "imagekit":
                data = [data_part(self.phases(s)) * 1000 if self.phases(s) else float("nan")
                        for s in sizes]
                right.plot(sizes, data, marker="s", linestyle="--", color=COLORS[paradigm],
                           label="(a) of which the data: commit + schedule")
        left.set_title("Producer start → consumer done (median)")
        left.set_ylabel("seconds")
        right.set_title("Handoff: producer's output complete → consumer holds its input")
        right.set_ylabel("milliseconds")
        for axis in (left, right):
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xticks(sizes, [size_label(s) for s in sizes])
            axis.set_xlabel("D, bytes handed from producer to consumer")
            axis.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=8)
        right.legend(fontsize=8)
        figure.suptitle(f"imagekit handoff vs services vs functions — {self.machine['cpu']}, {self.date}", fontsize=10)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)

    def markdown(self) -> str:
        from .markdown import render
        return render(self)
