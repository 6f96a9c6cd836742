"""The results page's last sections: where the time goes (the profiles behind the numbers) and what is
not measured. markdown.py assembles the page."""
from __future__ import annotations

from .report import TARGETS, data_part, fmt_ms, fmt_ratio, is_data_phase, size_label


def why(r) -> str:
    p = r.profile
    rpc = p["rpc"]
    cprofile = p["cprofile"]
    imports = {row["label"].split(" (")[0].split(":")[0]: row for row in p["imports"]}
    lines = ["## Where the time goes (profiles)\n"]
    largest = r.sizes[-1]
    handoff, services = r.overhead("imagekit", largest), r.overhead("services", largest)
    phases = r.phases(largest)
    if handoff and services and phases:
        data = data_part(phases)
        rest = ", ".join(f"{name.split(' (')[0]} {fmt_ms(value)} ms" for name, value in phases.items()
                         if not is_data_phase(name))
        lines.append(f"### (a) against (b) at {size_label(largest)}: {fmt_ratio(services / handoff)} "
                     f"(target {TARGETS['vs_services']:.0f}×)\n")
        lines.append(
            f"(a)'s handoff at {size_label(largest)} is {fmt_ms(handoff)} ms, of which the data's part (commit + "
            f"schedule) is {fmt_ms(data)} ms: {fmt_ratio(services / data)} below (b)'s {fmt_ms(services)} ms. The "
            f"rest ({rest}) is the producer's process ending and the conductor being woken by its pidfd, and the "
            f"consumer's `mmap`: nothing in it touches the data, and what varies between sizes and rounds is how "
            f"long a woken process waits for a CPU on this shared machine (load average {r.machine['load']}). (b) "
            f"itself is fast here because both containers share a host: "
            f"{largest / 1024 / services if services else 0:.2f} GiB/s through a local bridge; between nodes the "
            "network would bound it (1 GiB takes at least 0.86 s on a 10 Gbit/s wire alone), while (a)'s "
            "handoff never leaves the pod.\n")

    lines.append("### Step launch and handoff latency: supervisord's fork, reaping and XML-RPC round trips\n")
    lines.append("A chain of the same 20 trivial steps whose command first prints `date +%s.%N`, run by the runtime "
                 "on the host; median per step (ms):\n")
    lines.append("| phase | ms |\n| --- | --- |")
    for name, value in p["phases"].items():
        lines.append(f"| {name} | {fmt_ms(value)} |")
    lines.append("")
    container_total = r.launch_median("imagekit in container", "runtime")
    per_step = r.launch_median("imagekit in container", "per_step")
    first = r.launch_median("imagekit in container", "first_step_after")
    docker_total = r.launch_median("docker run per step", "runtime")
    docker_step = r.launch_median("docker run per step", "per_step")
    if container_total and per_step and docker_total and docker_step and first is not None:
        lines.append(f"In the container, the 20-step run took {container_total:.2f} s: {first:.2f} s before the first "
                     f"step started (the conductor's start, planning, supervisord's start) and then "
                     f"{fmt_ms(per_step)} ms per step. Step for step that is {fmt_ratio(docker_step / per_step)} below "
                     f"a `docker run` ({fmt_ms(docker_step)} ms); the one-off start brings the whole run to "
                     f"{fmt_ratio(docker_total / container_total)}.\n")
    lines.append(f"supervisord alone, driven by the runtime's own `Supervisor` client in the image "
                 f"(`bench/paradigms/rpcprobe.py`, {rpc['programs']} programs running `/bin/true`; medians):\n")
    lines.append("| call | ms |\n| --- | --- |")
    lines.append(f"| supervisord start until it answers `getState` | {fmt_ms(rpc['supervisord_start'])} |")
    lines.append(f"| `getAllProcessInfo` (`Supervisor.all_info`: what the conductor polled before) | {fmt_ms(rpc['all_info'])} |")
    if "process_info" in rpc:
        lines.append(f"| `imagekit.ended` (`Supervisor.process_info`: one process, after a reap; only for exits other "
                     f"than 0) | {fmt_ms(rpc['process_info'])} |")
    lines.append(f"| `imagekit.start` (`Supervisor.start_process`: spawn, answer the pid) | {fmt_ms(rpc['start_process'])} |")
    lines.append(f"| start → EXITED visible, asking back to back without sleeping "
                 f"({rpc['polls_until_exited']:.1f} polls) | {fmt_ms(rpc['start_to_exited_seen'])} |")
    lines.append("")
    calls = cprofile["rpc"]
    per = {k: v["cumtime"] / v["calls"] for k, v in calls.items() if v["calls"]}
    lines.append(f"cProfile of the conductor over the 20-step chain on the host: {cprofile['total']:.2f} s of run, "
                 f"{cprofile['sleep']:.2f} s of it in {cprofile['sleeps']} × `time.sleep` (waiting for supervisord to "
                 "answer at start, 5 ms each); "
                 f"{calls.get('process_info', {}).get('calls', 0)} × `process_info` at {fmt_ms(per.get('process_info'))} ms, "
                 f"{calls.get('start_process', {}).get('calls', 0)} × `start_process` at {fmt_ms(per.get('start_process'))} ms, "
                 f"`Supervisor.start` {fmt_ms(calls.get('start', {}).get('cumtime'))} ms (cProfile inflates the "
                 "per-call times somewhat). Top functions by own time:\n")
    lines.append("| function | calls | own s | cumulative s |\n| --- | --- | --- | --- |")
    for row in cprofile["top"]:
        lines.append(f"| `{row['function']}` | {row['calls']} | {row['tottime']:.3f} | {row['cumtime']:.3f} |")
    lines.append("")
    lines.append(
        "What is left per cold step is supervisord's own work: the fork of a Python process (*spawn*), "
        "answering one XML-RPC call (`imagekit.start`, `runtime/imagekit_runtime/supervise/rpc.py`) and the "
        "step's own interpreter or shell starting. The conductor holds a pidfd of every step process "
        "(`exit_watch.py`) and sleeps in `poll` until one exits; an exit 0 is read from `/proc/<pid>/stat` "
        "while the process is a zombie, so the hot path has no call to supervisord at all, and commit and "
        "scheduling take well under a millisecond. Warm steps move the spawn and the interpreter's start off "
        "the critical path (section 2). The one-off cost is supervisord's own start (a Python interpreter "
        "importing supervisor), paid before the first step. Container per step cannot go below `docker "
        "run`'s own start (hundreds of ms here).\n")

    bare = imports.get("python3 -c pass", {}).get("rss_kib", 0) / 1024
    http = imports.get("+ http.client", {}).get("rss_kib", 0) / 1024
    conductor = imports.get("conductor", {}).get("rss_kib", 0) / 1024
    supervisord = imports.get("supervisord as the runtime starts it", {}).get("rss_kib", 0) / 1024
    lines.append("### Memory: two CPython processes, and what the conductor imports\n")
    lines.append("Resident memory of a fresh interpreter in the image after each set of imports (KiB; each row a "
                 "new process):\n")
    lines.append("| imports | VmRSS | RssAnon | RssFile | modules |\n| --- | --- | --- | --- | --- |")
    for row in p["imports"]:
        lines.append(f"| {row['label']} | {row['rss_kib']} | {row['anon_kib']} | {row['file_kib']} | {row['modules']} |")
    lines.append("")
    lines.append(
        f"A bare interpreter is {bare:.1f} MiB resident; the conductor's imports alone bring it to "
        f"{conductor:.1f} MiB and supervisord's to {supervisord:.1f} MiB before either does anything, and "
        "neither grows with D (section 3: the data stays in shm, the runtime only stats it). The largest "
        f"single piece is `xmlrpc.client`'s transport: importing `http.client` alone takes the interpreter to "
        f"{http:.1f} MiB (it pulls in the `email` package and `ssl`); the conductor talks to supervisord's unix "
        "socket with a small transport of its own (`supervisor_client.UnixSocketTransport`), so supervisord's "
        "server modules stay out of it. The sum of two CPython processes' RSS counts the shared interpreter "
        "pages twice; their private memory (RssAnon) and Pss sums (section 3) are what they cost together. "
        "Under 40 MiB of summed RSS would need one process fewer (the conductor supervising its steps itself "
        "instead of supervisord, or running inside supervisord as an event listener): supervisord alone is "
        f"{supervisord:.1f} MiB before it runs anything, even started without pkg_resources, which "
        "supervisor 4.2 (Debian bookworm's) imports only to resolve one `module:attr` spec and which costs "
        "it about 7 MiB more (the rows above).\n")
    return "\n".join(lines)


MISSING = """## What is not measured

- A production object store: MinIO's server is packaged neither by Debian nor on PyPI (PyPI's `minio` is
  the client SDK), so the S3 store is moto's in-memory server (Python, one process), slower than a real
  store on the same host would be; the volume variant shows the best case of a store.
- Multi-node effects: everything is on one host, so (b) and (c) never cross a real network; on a cluster
  their overhead would grow further (bandwidth), (a)'s would not.
- Checkpoints are off in (a) (`--no-checkpoints`); `bench/bench_checkpoint.py` measures them.
- No `--init` and no cgroup limits on the containers; the steps are Python (3.11.2 in the images).
"""
