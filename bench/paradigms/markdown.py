"""docs/bench/results.md from a Results: numbers, machine, method, targets, and the profiles behind a miss."""
from __future__ import annotations

import statistics
from collections.abc import Callable

from .profiles import MISSING, why
from .report import (
    LABELS,
    LAUNCH_MODES,
    MIB,
    SHORT,
    TARGETS,
    WARM_CHAIN,
    data_part,
    fmt_ms,
    fmt_ratio,
    least_squares_slope,
    size_label,
)


def data_handoff(results, size: int) -> float | None:
    phases = results.phases(size)
    return data_part(phases) if phases else None


def _mapping(r, size: int) -> float | None:
    return r.median("floor", size, "mapping")


def _plus_mapping(r, size: int) -> float | None:
    handoff, mapping = r.overhead("imagekit", size), _mapping(r, size)
    return handoff + max(mapping, 0.0) if handoff is not None and mapping is not None else None


def _spread(r) -> str:
    spreads = []
    for paradigm in r.paradigms():
        for size in r.sizes:
            values = r._values(paradigm, size, "total")
            if len(values) > 1 and min(values) > 0:
                spreads.append(max(values) / min(values))
    if not spreads:
        return "one round, so no spread between rounds to show."
    spreads.sort()
    return (f"the same end-to-end measurement varied between rounds by {spreads[len(spreads) // 2]:.2f}× "
            f"(median over paradigms and sizes) and by up to {spreads[-1]:.1f}× (slowest ÷ fastest round).")


def render(r) -> str:
    out: list[str] = []
    for section in (_intro, _handoff, _launch, _memory, _targets):
        section(r, out.append)
    return "\n".join(out) + "\n"


def _intro(r, add: Callable[[str], None]) -> None:
    """Title, machine and summary table."""
    m = r.machine
    add("# Benchmarks: the pod pipeline against services and functions\n")
    add(f"Measured {r.date} with `{r.command}` ({r.rounds} round{'s' if r.rounds != 1 else ''}, medians; "
        f"{r.meta.get('seconds', 0):.0f} s in all). Plot: [handoff.png](handoff.png).\n")
    add("**Machine.** " + "; ".join([m["cpu"], m["memory"], m["os"], m["docker"], m["python"]]) +
        f". Shared with other engineers' test runs while measuring (load average {m['load']} at the end): "
        f"{_spread(r)} Ratios are of medians taken in the same run, with the order of the paradigms rotated "
        "each round.\n")
    add("![handoff time against size](handoff.png)\n")

    add("## Summary\n")
    add("```\n" + r.table() + "\n```\n")


def _handoff(r, add: Callable[[str], None]) -> None:
    """Section 1: handoff of D bytes between two steps."""
    largest = r.sizes[-1]
    add("## 1. Handoff of D bytes from a producer step to a consumer step\n")
    add("The producer makes D bytes (a 1 MiB pseudo-random block, repeated); the consumer checksums them "
        "(zlib.crc32, checked against the expected value in every run). The same code "
        "(`bench/paradigms/work.py`, `net.py`) and the same image (Debian bookworm, CPython 3.11.2, built by "
        f"{r.meta.get('built_with', 'imagekit build')}) in every paradigm.\n")
    add("**The handoff** is measured the same way everywhere, from timestamps taken inside the two steps (one "
        "kernel clock for the host and the containers): from the moment the producer's output is complete to "
        "the moment the consumer holds all of its input where it will read it. No floor is subtracted, so "
        "the noise of one measurement does not leak into another.\n")
    add("| paradigm | producer's output complete | → handoff → | consumer holds its input |\n| --- | --- | --- | --- |")
    add("| (a) imagekit | written into `$IMAGEKIT_OUT_BLOB` in shm (the container's `--shm-size` tmpfs) | "
        "exit 0, the runtime commits (a rename) and opens the gate of the consumer, a warm step started while "
        "the producer worked and waiting in `step.input_path` | the input opened and mmapped |")
    add("| (a) cold | the same | the same consumer, not warm: the runtime commits and then starts it "
        "(supervisord forks, the interpreter starts and imports) | the same |")
    add("| (b) services | in the producer's memory | `POST` over a Docker bridge network created for the run, "
        "stdlib `http.client` → `http.server`; both containers long-running, so no start in the span | the whole "
        "body received into the consumer's memory |")
    add("| (c) functions, volume | in the producer's memory | written to a file on a Docker volume (ext4 on the "
        "virtual disk, page cache, no fsync: the most favourable store), the container exits, a fresh "
        "`docker run` starts the consumer, which reads the file | the file in the consumer's memory |")
    add(f"| (c) functions, S3 | in the producer's memory | streamed `PutObject` to {r.meta.get('store', 'an S3 store')}, "
        "container exit, fresh container, streamed `GetObject`; a 40-line stdlib SigV4 client with an unsigned "
        "payload (no SDK retries, checksums or multipart: a lower bound for boto3) | the object in the "
        "consumer's memory |")
    add("| (d) floor | — | the producer writing D bytes to tmpfs, nothing else: the work every paradigm does "
        "at least, shown for scale | — |\n")
    add("In (a) the producer writes straight into the place the consumer reads, so the data never moves; in "
        "(b) and (c) it is copied through a socket or a store. (a)'s consumer then reads through a mapping, "
        "and the first touch of each 4 KiB page of it is a page fault: a cost that grows with D, paid inside "
        "the consumer's work rather than in the handoff (the others pay for their pages during their copy). "
        "The floor's container measures it: a checksum over a fresh mapping, then again over the same, now "
        "mapped, pages; the difference is the mapping cost (MiB per second of it below), and the row "
        "*(a) + mapping* adds it to (a)'s handoff as the strictest reading.\n")

    header = "| | " + " | ".join(size_label(s) for s in r.sizes) + \
        f" | slope, ms per GiB | {size_label(largest)} ÷ {size_label(r.sizes[0])} |"
    add("### Handoff (ms, median)\n")
    add(header)
    add("|" + " --- |" * (len(r.sizes) + 3))
    for paradigm in r.paradigms():
        if paradigm == "floor":
            continue
        add(f"| {LABELS[paradigm]} | " + " | ".join(fmt_ms(r.overhead(paradigm, s)) for s in r.sizes) +
            f" | {fmt_ms(r.slope(paradigm))} | {fmt_ratio(r.growth(paradigm))} |")
    add("| (a), data part only: commit + schedule | " + " | ".join(fmt_ms(data_handoff(r, s)) for s in r.sizes) + " | | |")
    mapped = [_plus_mapping(r, s) for s in r.sizes]
    first, last = mapped[0], mapped[-1]
    add("| (a) + mapping the input's pages in (see below) | " + " | ".join(fmt_ms(v) for v in mapped) +
        f" | {fmt_ms(least_squares_slope(r.sizes, mapped))} | "
        f"{fmt_ratio(last / first if first and last is not None and len(mapped) > 1 else None)} |\n")

    add("### Ratio of each paradigm's handoff to (a)'s\n")
    add("| | " + " | ".join(size_label(s) for s in r.sizes) + f" | ÷ (a)'s data part at {size_label(largest)} | "
        f"÷ (a) + mapping at {size_label(largest)} |")
    add("|" + " --- |" * (len(r.sizes) + 3))
    for paradigm in r.paradigms():
        if paradigm in ("floor", "imagekit"):
            continue
        data, strict = data_handoff(r, largest), _plus_mapping(r, largest)
        over = r.overhead(paradigm, largest)
        add(f"| {SHORT[paradigm]} | " + " | ".join(fmt_ratio(r.ratio(paradigm, s)) for s in r.sizes) +
            f" | {fmt_ratio(over / data if over and data else None)} | {fmt_ratio(over / strict if over and strict else None)} |")
    add("")

    add("### End to end (ms, median): total = producer start → consumer end; produce; handoff; consume\n")
    add("| | " + " | ".join(f"{size_label(s)}: total / produce / handoff / consume" for s in r.sizes) + " |")
    add("|" + " --- |" * (len(r.sizes) + 1))
    for paradigm in r.paradigms():
        cells = []
        for s in r.sizes:
            cells.append(" / ".join(fmt_ms(r.median(paradigm, s, k)) for k in ("total", "produce", "handoff", "consume")))
        add(f"| {SHORT[paradigm]} | " + " | ".join(cells) + " |")
    add("")

    add("### Reading through a mapping of tmpfs (the floor's container; ms, median)\n")
    add("| | " + " | ".join(size_label(s) for s in r.sizes) + " |")
    add("|" + " --- |" * (len(r.sizes) + 1))
    for key, label in (("first_pass", "checksum over a fresh mapping"), ("mapped_pass", "again, pages already mapped"),
                       ("mapping", "mapping cost (the difference)")):
        add(f"| {label} | " + " | ".join(fmt_ms(r.median("floor", s, key)) for s in r.sizes) + " |")
    add("")
    add("The difference is the page faults of the first touch, one per 4 KiB page (this kernel maps tmpfs with "
        "4 KiB pages: `transparent_hugepage/shmem_enabled` is `never`; Docker refuses a `huge=` tmpfs option, "
        "`invalid tmpfs option`, and a Kubernetes `medium: Memory` emptyDir has none, while `medium: "
        "HugePages-2Mi` with preallocated huge pages would cut the faults 512-fold). `MAP_POPULATE` or "
        "`MADV_SEQUENTIAL` move the same work, they do not remove it. The other paradigms pay the equivalent "
        "while they copy.\n")

    for paradigm, title in (("imagekit", "(a), warm consumer"), ("imagekit-cold", "(a) cold")):
        phases = {s: r.phases(s, paradigm) for s in r.sizes}
        names = list(next(iter(phases.values())).keys()) if phases and next(iter(phases.values())) else []
        if not names:
            continue
        add(f"### Where the handoff of {title} goes (ms, median; from the steps' timestamps and the runtime's journal)\n")
        add("| phase | " + " | ".join(size_label(s) for s in r.sizes) + " |")
        add("|" + " --- |" * (len(r.sizes) + 1))
        for name in names:
            add(f"| {name} | " + " | ".join(fmt_ms(phases[s].get(name)) for s in r.sizes) + " |")
        add("")
    add("Only *commit* and *schedule* touch the data: one `lstat` of the output, the commit record and a rename "
        "of the staging directory, the same at every size (row *data part* above; a directory output's walk is "
        "vetted off this path); for the warm consumer, *schedule* runs until the consumer is past its gate: the "
        "conductor writes to the gate (a FIFO) and the consumer's `poll` returns. *Exit seen* is the producer "
        "declaring its output complete and the conductor noticing: `step.done()` writes the producer's pid into "
        "the run's done FIFO, on which the conductor sleeps in `poll` beside the pidfds, and exits 5 ms later, "
        "when its teardown (which holds a CPU) is no longer in the consumer's way; the commit does not wait for "
        "it. *Map* is the consumer's `open` + `mmap`. Each of the two wake-ups on the way (the conductor's, the "
        "consumer's) waits for a CPU on a loaded machine: the load average above. A cold consumer pays the life "
        "cycle of a process instead: supervisord forking (*spawn*), and the interpreter starting and importing its "
        "modules (*step start-up*). (b)'s consumer is already running, so it pays none of that either; (c) pays a "
        "container start.\n")


def _launch(r, add: Callable[[str], None]) -> None:
    """Section 2: step launch latency."""
    add("## 2. Step launch: 20 trivial steps in a chain\n")
    add("Each step is `/bin/sh -c ': > <its output>'` and depends on the one before, so they run one after the "
        "other. *imagekit in container*: the image built by `imagekit build`, `docker run` of its entrypoint; "
        "*total* is the runtime's own `wall_seconds` (supervisord start, 20 steps, exit), the container's start "
        "and stop are listed apart. *imagekit on host*: `python3 -m imagekit_runtime run` on the host. "
        "*, warm*: every step after the first is warm (`imagekit-wait || exit 1; : > <its output>`, "
        "`warm_slots: 20`), so every process is started while the first step runs and each waits at its gate; "
        "the chain then costs one handoff per step. *docker run per step*: 20 × `docker run --rm` of the same "
        "command on the same image, a volume carrying the outputs. *Per step* is the median time from one "
        "step's `running` to the next one's (journal): the step's own work, its exit being seen, the commit and "
        "the next start (cold) or gate (warm): everything the runtime adds per step.\n")
    add("| | total s | per step ms | first step after s | whole `docker run` s | container-per-step ÷ this (total) | "
        "÷ this, per step |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    docker_total = r.launch_median("docker run per step", "runtime")
    docker_step = r.launch_median("docker run per step", "per_step")
    for mode in LAUNCH_MODES:
        total = r.launch_median(mode, "runtime")
        if total is None:
            continue
        wall = r.launch_median(mode, "wall")
        first = r.launch_median(mode, "first_step_after")
        per_step = r.launch_median(mode, "per_step")
        add(f"| {mode} | {total:.2f} | {fmt_ms(per_step)} | "
            f"{'—' if mode.startswith('docker') else f'{first:.2f}'} | {wall:.2f} | "
            f"{fmt_ratio(docker_total / total if docker_total else None)} | "
            f"{fmt_ratio(docker_step / per_step if docker_step and per_step else None)} |")
    add("")
    warm_total = r.launch_median(WARM_CHAIN, "runtime")
    warm_first = r.launch_median(WARM_CHAIN, "first_step_after")
    if warm_total and warm_first is not None:
        add(f"A warm chain pays its processes' starts up front, beside the first step: in the container the run "
            f"took {warm_total:.2f} s, {warm_first:.2f} s of it before the first step ran (the conductor and "
            "supervisord starting), then the 20 spawns overlapping the first steps and one handoff per step.\n")
    if r.scaling:
        add("### Chains of 20, 100 and 200 steps (host, cold steps)\n")
        add("The same trivial steps, more of them, run by `python3 -m imagekit_runtime run` on the host "
            "(`bench/paradigms/chains.py`). Every transition costs calls about one process only: a start that "
            "answers with the pid, the pid's pidfd, `/proc` for an exit 0; the scheduling keeps per-event "
            "bookkeeping and looks steps up by name, so no step's cost grows with the number of steps.\n")
        add("| steps | total s | per step ms (total ÷ steps) | step to step ms (median) | first step after s |")
        add("| --- | --- | --- | --- | --- |")
        for count in r.scaling_counts():
            add(f"| {count} | {r.scaling_median(count, 'runtime'):.2f} | {fmt_ms(r.scaling_median(count, 'per_step'))} | "
                f"{fmt_ms(r.scaling_median(count, 'step_to_step'))} | {r.scaling_median(count, 'first_step_after'):.2f} |")
        add("")
    if r.idle:
        idle = r.idle
        add("### The runtime's CPU while a step works\n")
        add(f"One step sleeping (`bench/paradigms/chains.py`, host): between 1 s after supervisord started and "
            f"shortly before the step ended ({idle['seconds']:.1f} s), the conductor used {idle['conductor']:.2f} and "
            f"supervisord {idle['supervisord']:.2f} CPU-seconds (`/proc/<pid>/stat`, in ticks of "
            f"{idle['clock_tick'] * 1000:.0f} ms): **{idle['per_run_second']:.4f} CPU-seconds per run-second**, "
            f"{100 * idle['per_run_second']:.2f} % of one core. The conductor sleeps in `poll` with no timeout on "
            "the step's pidfd, its signal wake-up fd and an inotify watch of the logs directory (step output is "
            "echoed when it is written); supervisord wakes once a second (its own loop's timeout) and when a step "
            "writes output.\n")


def _memory(r, add: Callable[[str], None]) -> None:
    """Section 3: the runtime's memory and CPU."""
    add("## 3. Runtime memory\n")
    add("Sampled every 20 ms from `/proc/<pid>/status` (VmRSS, VmHWM = the kernel's high-water mark, RssAnon = "
        "private) and `/proc/<pid>/smaps_rollup` (Pss: shared pages split among their sharers) of the conductor "
        "(the container's PID 1, or the process started on the host) and its supervisord child. MiB, peak over "
        "the runs of each kind.\n")
    add("| runs | conductor VmHWM | conductor RssAnon | conductor Pss | supervisord VmHWM | supervisord RssAnon | "
        "supervisord Pss | VmHWM sum | Pss sum | CPU s of cond. + sup. / run s (median) |")
    add("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = []
    for entry in r.memory:
        kind = entry["label"] + (f", {size_label(entry['size'] // MIB)}" if entry["size"] else "")
        if kind not in kinds:
            kinds.append(kind)
    for kind in kinds:
        rows = [e for e in r.memory if e["label"] + (f", {size_label(e['size'] // MIB)}" if e["size"] else "") == kind]

        def peak(process: str, key: str, rows: list[dict] = rows) -> float:
            return max(e[process].get(key, 0) for e in rows) / MIB
        cpu = statistics.median(e["conductor_cpu"] + e["supervisord_cpu"] for e in rows)
        wall = statistics.median(e["runtime_seconds"] for e in rows)
        add(f"| {kind} | {peak('conductor', 'VmHWM'):.1f} | {peak('conductor', 'RssAnon'):.1f} | {peak('conductor', 'Pss'):.1f} | "
            f"{peak('supervisord', 'VmHWM'):.1f} | {peak('supervisord', 'RssAnon'):.1f} | {peak('supervisord', 'Pss'):.1f} | "
            f"{peak('conductor', 'VmHWM') + peak('supervisord', 'VmHWM'):.1f} | "
            f"{peak('conductor', 'Pss') + peak('supervisord', 'Pss'):.1f} | {cpu:.2f} / {wall:.2f} |")
    add("")

    handoffs = sorted((e for e in r.memory if e["label"].startswith("handoff")), key=lambda e: e["runtime_seconds"])
    if len(handoffs) > 1:
        short, long = handoffs[0], handoffs[-1]
        extra_cpu = (long["conductor_cpu"] + long["supervisord_cpu"]) - (short["conductor_cpu"] + short["supervisord_cpu"])
        extra_wall = long["runtime_seconds"] - short["runtime_seconds"]
        if extra_wall > 0.2:
            add(f"Neither process grows with D. Their CPU does grow with the run's length: from the shortest "
                f"handoff run ({short['runtime_seconds']:.2f} s) to the longest ({long['runtime_seconds']:.2f} s) "
                f"conductor + supervisord used {extra_cpu:.2f} CPU-seconds more, {100 * extra_cpu / extra_wall:.0f} % "
                "of one core while a step was working and they only polled (profiles below); the rest of their CPU is "
                "the two interpreters starting.\n")


def _targets(r, add: Callable[[str], None]) -> None:
    """Section 4: targets, the profiles behind a miss, notes."""
    largest = r.sizes[-1]
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
        add(why(r))
    if r.notes:
        add("## Notes\n")
        for note in r.notes:
            add(f"- {note}")
        add("")
    add(MISSING)
