"""Sample the memory of the runtime's two processes, the conductor and supervisord, from /proc.

The conductor is the process we started (or a container's PID 1, seen from the host), supervisord
its child whose command line names supervisord. Every `interval` seconds both are read:
VmRSS (resident now), VmHWM (the kernel's high-water mark of VmRSS), RssAnon (private memory,
what the process itself allocated; RssFile is shared libraries and mapped files), and Pss from
smaps_rollup (shared pages divided among their sharers: the two processes share libpython and
most of the interpreter's files, so their Pss add up; their RSS count those pages twice).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def read_status(pid: int) -> dict[str, int] | None:
    """The memory fields of /proc/<pid>/status in bytes, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            values = {}
            for line in status:
                key, _, rest = line.partition(":")
                if key in FIELDS:
                    values[key] = int(rest.split()[0]) * 1024
            return values
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


def read_pss(pid: int) -> dict[str, int]:
    """Pss (resident memory with shared pages divided among the processes sharing them) and Pss_Anon."""
    values = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                key, _, rest = line.partition(":")
                if key in ("Pss", "Pss_Anon"):
                    values[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
        pass
    return values


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except FileNotFoundError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as source:
            return source.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


@dataclass
class Peak:
    samples: int = 0
    max: dict[str, int] = field(default_factory=dict)  # field -> largest value seen
    cmdline: str = ""
    cpu_seconds: float = 0.0  # at the last sample

    def add(self, values: dict[str, int]) -> None:
        self.samples += 1
        for key, value in values.items():
            self.max[key] = max(self.max.get(key, 0), value)


class MemorySampler:
    """Samples the conductor `pid` and its supervisord child in a background thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.conductor = Peak(cmdline=cmdline(pid))
        self.supervisord = Peak()
        self._supervisord_pid: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> MemorySampler:
        self._stop.set()
        self._thread.join()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            values = read_status(self.pid)
            if values is None:
                return
            values.update(read_pss(self.pid))
            self.conductor.add(values)
            self.conductor.cpu_seconds = cpu_seconds(self.pid) or self.conductor.cpu_seconds
            if self._supervisord_pid is None:
                for child in children(self.pid):
                    line = cmdline(child)
                    if "supervisord" in line:
                        self._supervisord_pid = child
                        self.supervisord.cmdline = line
            if self._supervisord_pid is not None:
                values = read_status(self._supervisord_pid)
                if values is not None:
                    values.update(read_pss(self._supervisord_pid))
                    self.supervisord.add(values)
                    self.supervisord.cpu_seconds = cpu_seconds(self._supervisord_pid) or self.supervisord.cpu_seconds
            self._stop.wait(self.interval)
