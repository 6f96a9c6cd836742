"""docs/bench/results.md from a Results: numbers, machine, method, targets, and the profiles behind a miss."""
from __future__ import annotations

from .report import LABELS, MIB, SHORT, TARGETS, fmt_ms, fmt_ratio, size_label

DATA_PHASES = ("commit (committing → committed)", "schedule (committed → consumer running)")


def data_handoff(results, size: int) -> float | None:  # type: ignore[no-untyped-def]
    phases = results.phases(size)
    return sum(phases[p] for p in DATA_PHASES) if phases else None


def render(r) -> str:  # type: ignore[no-untyped-def]
    m = r.machine
    largest = r.sizes[-1]
    out: list[str] = []
    add = out.append
    add("# Benchmarks: the pod pipeline against services and functions\n")
    add(f"Measured {r.date} with `{r.command}` ({r.rounds} round{'s' if r.rounds != 1 else ''}, medians; "
        f"{r.meta.get('seconds', 0):.0f} s in all). Plot: [handoff.png](handoff.png).\n")
    add("**Machine.** " + "; ".join([m["cpu"], m["memory"], m["os"], m["docker"], m["python"]]) +
        f". Shared with other engineers' test runs while measuring (load average {m['load']} at the end), so "
        "single numbers move by ±30 %; ratios are of medians taken in the same run, with the order of the "
        "paradigms rotated each round.\n")
    add("![handoff time against size](handoff.png)\n")

    add("## Summary\n")
    add("```\n" + r.table() + "\n```\n")

    # ---------------------------------------------------------------- handoff
    add("## 1. Handoff of D bytes from a producer step to a consumer step\n")
    add("The producer writes D bytes (a 1 MiB pseudo-random block, repeated); the consumer reads them and "
        "checksums them (zlib.crc32, verified against the expected value in every run). The same code "
        "(`bench/paradigms/work.py`) and the same image (Debian bookworm, CPython 3.11.2, built by "
        f"{r.meta.get('built_with', 'imagekit build')}) in every paradigm; a file is read through mmap, a socket "
        "in 1 MiB reads. Timestamps are taken inside the steps (one kernel clock for host and containers).\n")
    add("| paradigm | how the bytes move |\n| --- | --- |")
    add("| (a) imagekit | `imagekit build` image, the real runtime as entrypoint (conductor + supervisord), both "
        "steps in one container, `--shm-size` tmpfs; the producer writes `$IMAGEKIT_OUT_BLOB`, exit 0 commits "
        "it (a rename), the consumer mmaps `$IMAGEKIT_IN_BLOB`. `--no-checkpoints`. |")
    add("| (b) services | two long-running containers on a Docker bridge network created for the run; the "
        "producer streams D in a `POST` to the consumer (stdlib `http.client` → `http.server`), which checksums "
        "as it receives. No container start in the measured span. |")
    add("| (c) functions, volume | a fresh `docker run --rm` per step; the producer writes a file on a Docker "
        "volume (ext4 on the virtual disk, page cache, no fsync: the most favourable case), the next container "
        "mmaps it. The consumer's container start is in the span. |")
    add(f"| (c) functions, S3 | the same with {r.meta.get('store', 'an S3 store')}: a streamed `PutObject`, "
        "then a streamed `GetObject`, SigV4-signed with an unsigned payload by a 40-line stdlib client (no SDK "
        "retries, checksums or multipart: a lower bound for boto3). |")
    add("| (d) floor | the producer writing D bytes to the container's tmpfs; nothing else. The consumer's "
        "own work (checksumming D bytes from tmpfs) is measured next to it. |\n")
    add("**Overhead** of a handoff: for (b) and (c), producer start → consumer end minus the floor (producing "
        "to tmpfs) minus the consumer's own work (checksumming from tmpfs). For (a) it is measured directly as "
        "consumer start − producer end (the work on either side is the floor's code on the same tmpfs); the "
        "subtraction gives the same within noise and is listed below as a check.\n")

    header = "| | " + " | ".join(size_label(s) for s in r.sizes) + " | growth, ms per GiB |"
    add("### Overhead per handoff (ms, median)\n")
    add(header)
    add("|" + " --- |" * (len(r.sizes) + 2))
    for paradigm in r.paradigms():
        if paradigm == "floor":
            continue
        add(f"| {LABELS[paradigm]} | " + " | ".join(fmt_ms(r.overhead(paradigm, s)) for s in r.sizes) +
            f" | {fmt_ms(r.slope(paradigm))} |")
    add("| (a), by subtraction (end-to-end − floors) | " + " | ".join(fmt_ms(r.overhead_by_subtraction(s)) for s in r.sizes) + " | |")
    add("| (a), data part only: commit + schedule | " + " | ".join(fmt_ms(data_handoff(r, s)) for s in r.sizes) + " | |\n")

    add("### Ratio of each paradigm's overhead to (a)\n")
    add("| | " + " | ".join(size_label(s) for s in r.sizes) + f" | ÷ (a)'s data part at {size_label(largest)} |")
    add("|" + " --- |" * (len(r.sizes) + 2))
    for paradigm in r.paradigms():
        if paradigm in ("floor", "imagekit"):
            continue
        data = data_handoff(r, largest)
        over = r.overhead(paradigm, largest)
        add(f"| {SHORT[paradigm]} | " + " | ".join(fmt_ratio(r.ratio(paradigm, s)) for s in r.sizes) +
            f" | {fmt_ratio(over / data if over and data else None)} |")
    add("")

    add("### End-to-end and work times (ms, median): producer start → consumer end; producer's write; consumer's read + checksum\n")
    add("| | " + " | ".join(f"{size_label(s)}: total / produce / consume" for s in r.sizes) + " |")
    add("|" + " --- |" * (len(r.sizes) + 1))
    for paradigm in r.paradigms():
        cells = []
        for s in r.sizes:
            cells.append(" / ".join(fmt_ms(r.median(paradigm, s, k)) for k in ("total", "produce", "consume")))
        add(f"| {SHORT[paradigm]} | " + " | ".join(cells) + " |")
    add("")

    add("### Where (a)'s handoff goes (ms, median; from the steps' timestamps and the runtime's journal)\n")
    phases = {s: r.phases(s) for s in r.sizes}
    names = list(next(iter(phases.values())).keys()) if phases and next(iter(phases.values())) else []
    add("| phase | " + " | ".join(size_label(s) for s in r.sizes) + " |")
    add("|" + " --- |" * (len(r.sizes) + 1))
    for name in names:
        add(f"| {name} | " + " | ".join(fmt_ms(phases[s].get(name)) for s in r.sizes) + " |")
    add("")
    add("Only *commit* and *schedule* touch the data: a rename of the staging directory and a stat of its "
        "files, the same for 64 MiB and 1 GiB. The rest is the life cycle of two processes: the producer's "
        "interpreter exiting and supervisord and the conductor noticing (*exit seen*), supervisord forking and "
        "the consumer's interpreter starting (*spawn*), and the consumer importing its modules (*step "
        "start-up*). (b)'s consumer is already running, so it pays none of that; (c) pays a container start "
        "instead.\n")

    # ----------------------------------------------------------------- launch
    add("## 2. Step launch: 20 trivial steps in a chain\n")
    add("Each step is `/bin/sh -c ': > <its output>'` and depends on the one before, so they run one after the "
        "other. *imagekit in container*: the image built by `imagekit build`, `docker run` of its entrypoint; "
        "*total* is the runtime's own `wall_seconds` (supervisord start, 20 steps, exit), the container's start "
        "and stop are listed apart. *imagekit on host*: `python3 -m imagekit_runtime run` on the host. "
        "*docker run per step*: 20 × `docker run --rm` of the same command on the same image, a volume "
        "carrying the outputs.\n")
    add("| | total s | per step ms | first step after s | whole `docker run` s | container-per-step ÷ this |")
    add("| --- | --- | --- | --- | --- | --- |")
    docker_total = r.launch_median("docker run per step", "runtime")
    for mode in ("imagekit in container", "imagekit on host", "docker run per step"):
        total = r.launch_median(mode, "runtime")
        if total is None:
            continue
        wall = r.launch_median(mode, "wall")
        first = r.launch_median(mode, "first_step_after")
        add(f"| {mode} | {total:.2f} | {fmt_ms(r.launch_median(mode, 'per_step'))} | "
            f"{first:.2f} | {wall:.2f} | {fmt_ratio(docker_total / total if docker_total else None)} |")
    add("")

    # ----------------------------------------------------------------- memory
    add("## 3. Runtime memory\n")
    add("Sampled every 20 ms from `/proc/<pid>/status` (VmRSS, VmHWM = the kernel's high-water mark, RssAnon = "
        "private) and `/proc/<pid>/smaps_rollup` (Pss: shared pages split among their sharers) of the conductor "
        "(the container's PID 1, or the process started on the host) and its supervisord child. MiB, peak over "
        "the runs of each kind.\n")
    add("| runs | conductor VmHWM | conductor RssAnon | conductor Pss | supervisord VmHWM | supervisord RssAnon | supervisord Pss | VmHWM sum | Pss sum | CPU s (cond. + sup.) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = []
    for entry in r.memory:
        kind = entry["label"] + (f", {size_label(entry['size'] // MIB)}" if entry["size"] else "")
        if kind not in kinds:
            kinds.append(kind)
    for kind in kinds:
        rows = [e for e in r.memory if e["label"] + (f", {size_label(e['size'] // MIB)}" if e["size"] else "") == kind]

        def peak(process: str, key: str) -> float:
            return max(e[process].get(key, 0) for e in rows) / MIB
        cpu = max(e["conductor_cpu"] + e["supervisord_cpu"] for e in rows)
        add(f"| {kind} | {peak('conductor', 'VmHWM'):.1f} | {peak('conductor', 'RssAnon'):.1f} | {peak('conductor', 'Pss'):.1f} | "
            f"{peak('supervisord', 'VmHWM'):.1f} | {peak('supervisord', 'RssAnon'):.1f} | {peak('supervisord', 'Pss'):.1f} | "
            f"{peak('conductor', 'VmHWM') + peak('supervisord', 'VmHWM'):.1f} | "
            f"{peak('conductor', 'Pss') + peak('supervisord', 'Pss'):.1f} | {cpu:.2f} |")
    add("")

    # ---------------------------------------------------------------- targets
    add("## 4. Targets\n")
    add("| target | measured | |\n| --- | --- | --- |")
    for name, value, met in r.targets():
        add(f"| {name} | {value} | {'met' if met else 'missed' if met is False else 'n/a'} |")
    data = data_handoff(r, largest)
    services = r.overhead("services", largest)
    if data and services:
        add(f"| (a)'s data part (commit + schedule) ≥ {TARGETS['vs_services']:.0f}× below (b) at {size_label(largest)} | "
            f"{fmt_ratio(services / data)} | {'met' if services / data >= TARGETS['vs_services'] else 'missed'} |")
    add("")
    if r.profile:
        add(_why(r))
    if r.notes:
        add("## Notes\n")
        for note in r.notes:
            add(f"- {note}")
        add("")
    add(MISSING)
    return "\n".join(out) + "\n"


def _why(r) -> str:  # type: ignore[no-untyped-def]
    p = r.profile
    lines = ["## Why the missed targets are missed (profiles)\n"]
    lines.append("### Step launch latency: a 10 ms sleep-poll over XML-RPC\n")
    lines.append("A chain of the same 20 trivial steps whose command first prints `date +%s.%N`, run on the host; "
                 "median per step (ms):\n")
    lines.append("| phase | ms |\n| --- | --- |")
    for name, value in p["phases"].items():
        lines.append(f"| {name} | {fmt_ms(value)} |")
    cprofile = p["cprofile"]
    lines.append("")
    lines.append(f"cProfile of the conductor over the 20-step run on the host: {cprofile['total']:.2f} s in all, "
                 f"{cprofile['sleep']:.2f} s of it in `time.sleep`. Top functions by own time:\n")
    lines.append("| function | calls | own s | cumulative s |\n| --- | --- | --- | --- |")
    for row in cprofile["top"]:
        lines.append(f"| `{row['function']}` | {row['calls']} | {row['tottime']:.3f} | {row['cumtime']:.3f} |")
    lines.append("")
    lines.append(
        "The conductor (`runtime/imagekit_runtime/conductor.py`, `_loop`) learns that a step exited only by "
        "polling: every `poll_interval` = 10 ms it sleeps, then asks supervisord for `getAllProcessInfo` over "
        "XML-RPC on a unix socket, and parses an XML document that describes every program (about 1,700 XML "
        "elements per call for 20 steps: the `xmlrpc/client.py` start/end/data rows above). A step that "
        "exits right after it starts is therefore seen one to two poll periods later, plus supervisord's own "
        "reaction (it reaps on the EOF of the step's output pipe or on SIGCHLD) and the RPC round trip: the "
        "*exit seen* row. Starting the next step is one more RPC (`startProcess`) and a fork/exec by "
        "supervisord: *spawn*. Commit and scheduling themselves take well under a millisecond. The same "
        "polling also costs CPU while long steps run (the CPU column in section 3: conductor and supervisord "
        "together use a noticeable share of one of the two cores for a one-second run), which slows the steps "
        "on a 2-core machine. Fixes that belong to the runtime: wait on events instead of sleeping (supervisord "
        "event listener for PROCESS_STATE_EXITED, or the conductor spawning steps itself and blocking in "
        "`os.waitid`/a pidfd), or at least poll `getProcessInfo` for running steps only and back off when "
        "nothing is about to finish.\n")
    lines.append("### Memory: two CPython processes\n")
    lines.append("Resident memory of a fresh interpreter in the image after the imports each process makes "
                 "(KiB):\n")
    lines.append("| process state | VmRSS | RssAnon | RssFile | modules |\n| --- | --- | --- | --- | --- |")
    for row in p["imports"]:
        lines.append(f"| {row['label']} | {row['rss_kib']} | {row['anon_kib']} | {row['file_kib']} | {row['modules']} |")
    lines.append("")
    lines.append(
        "Each runtime process is a full CPython: the bare interpreter is already ~9-10 MiB resident, and "
        "supervisord's own modules and the runtime's (yaml, xmlrpc, the conductor, checkpoint code) bring each "
        "to 20-30 MiB. Two such processes cannot fit 40 MiB of RSS, which counts the shared interpreter pages "
        "twice; their Pss (section 3) is the fairer sum. Getting under 40 MiB of RSS needs one process fewer "
        "(the conductor supervising the steps itself, or supervisord's `[eventlistener]` running the "
        "conductor's logic) or lazier imports in the conductor (checkpoint/hash code, yaml only while "
        "parsing).\n")
    return "\n".join(lines)


MISSING = """## What is not measured

- A real S3 service or MinIO: no MinIO in Debian's or PyPI's packages, so the store is moto's in-memory
  server (Python, single process), which is slower than a production store would be on the same host;
  the volume variant shows the best case of a store.
- Multi-node effects: everything is on one host, so (b) and (c) never cross a real network; on a cluster
  their overhead would grow further (bandwidth), (a)'s would not.
- Checkpoints are off in (a) (`--no-checkpoints`); `bench/bench_checkpoint.py` measures them.
- No `--init` and no cgroup limits on the containers; the steps are Python (3.11.2 in the images).
"""
