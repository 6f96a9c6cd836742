"""The processes of a run's steps: spawned by supervisord, watched by pidfd, warm ones held at their gate.

Every call is about one process, so its cost does not grow with the number of steps: a start answers
with the pid (rpc.py), an exit is told by the pid's pidfd, and a successful exit is read
from /proc while the process is a zombie (supervisord is asked only about the others). A step may
declare its outputs complete before it exits (step.done(): its pid through the done FIFO).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .client import ProcessInfo, Supervisor
from .config import ProgramSpec, render
from .exit_watch import ExitWatcher, zombie_exit_status
from .gates import Gates, bin_dir, install_wait_program
from .leftovers import kill_escaped, kill_group, kill_leftovers
from .step_program import done_fifo

ENDED = ("EXITED", "FATAL", "STOPPED", "BACKOFF", "UNKNOWN")  # supervisord states of a process that is over
LIVE = ("RUNNING", "STARTING", "STOPPING")


class StepProcesses:
    """The conductor's StepHost (run/drives.py) on supervisord."""

    def __init__(self, supervisor: Supervisor, watcher: ExitWatcher, gates: Gates, run_dir: Path) -> None:
        self.supervisor = supervisor
        self.watcher = watcher
        self.gates = gates
        self.run_dir = run_dir
        self.supervisor_log = supervisor.log_file
        self.pids: dict[str, int] = {}  # steps with a process: its pid (and process group)
        self.by_group: dict[int, str] = {}  # the other way round
        self.declared: set[str] = set()  # steps that declared their outputs complete, their process not yet ended

    @property
    def running(self) -> set[str]:
        return set(self.pids)

    @property
    def polls(self) -> bool:
        return not self.watcher.supported

    def start(self, programs: list[ProgramSpec]) -> None:
        """The wait program warm steps call, the done FIFO, supervisord's configuration, then supervisord."""
        install_wait_program(bin_dir(self.run_dir))
        self.watcher.listen_for_done(str(done_fifo(self.run_dir)))
        self.supervisor.config.write_text(render(self.supervisor.socket_path, self.run_dir, programs))
        self.supervisor.start()

    def wait(self, timeout: float | None, extra_fd: int | None) -> bool:
        return self.watcher.wait(timeout, extra_fd)

    def wake(self) -> None:
        self.watcher.wake()

    def shutdown(self) -> None:
        self.supervisor.shutdown()
        self.gates.close_all()

    def declarations(self) -> list[str]:
        """The steps whose process (or a process of its group) declared the outputs complete since the last
        call; a pid of no step's group (an earlier attempt's, say) is ignored."""
        names = []
        for pid in self.watcher.declared():
            name = self.by_group.get(pid)
            if name is None:
                with contextlib.suppress(OSError):
                    name = self.by_group.get(os.getpgid(pid))
            if name is not None and name not in self.declared:
                self.declared.add(name)
                names.append(name)
        return names

    def spawn(self, name: str, *, gated: bool, open_gate: bool) -> None:
        """Start the step's process; a gated (warm) one gets its gate first, opened now or later."""
        if gated:
            self.gates.prepare(name)
            if open_gate:
                self.gates.release(name)
        pid = self.supervisor.start_process(name)
        self.pids[name] = pid
        self.by_group[pid] = name
        self.declared.discard(name)
        self.watcher.watch(name, pid)

    def open_gate(self, name: str) -> None:
        self.gates.release(name)

    def exits(self) -> list[tuple[str, ProcessInfo]]:
        """The processes that ended since the last call, with how they ended."""
        names = self.watcher.fired() if self.watcher.supported else list(self.pids)
        ended = []
        for name in names:
            if name not in self.pids:
                self.watcher.forget(name)
                continue
            pid = self.pids[name]
            if pid > 0 and zombie_exit_status(pid) == 0:  # exit 0, before supervisord even reaped it
                info = ProcessInfo(name=name, state="EXITED", exit_status=0, pid=pid, description="exit status 0")
            else:
                info = self.supervisor.process_info(name)
            if info.state in ENDED:
                self.watcher.forget(name)
                ended.append((name, info))
            # else: not reaped yet (rare): the watcher looks again within a millisecond
        return ended

    def ended(self, name: str) -> None:
        """The step's process is over: its gate closes and what is left of its process group is killed
        (before the commit checks its outputs)."""
        self.gates.close(name)
        self.declared.discard(name)
        pid = self.pids.pop(name, 0)
        self.by_group.pop(pid, None)
        if pid > 0:
            kill_group(pid)
        else:
            kill_leftovers(self.supervisor_log, name)
        kill_escaped(name, self.supervisor_log.parent)  # what left the group: a daemon, a setsid

    def stop(self, names: Iterable[str], grace_seconds: float, meanwhile: Callable[[], None]) -> None:
        """Close every gate (waiters see end-of-file), SIGTERM the processes (supervisord sends SIGKILL after
        the grace period) and wait until they are gone."""
        self.gates.close_all()
        live = list(names)
        for name in live:
            self.supervisor.stop_process(name)
        deadline = time.monotonic() + grace_seconds + 10
        while live and time.monotonic() < deadline:
            live = [name for name in live if self.supervisor.process_info(name).state in LIVE]
            if live:
                meanwhile()
                time.sleep(0.05)
