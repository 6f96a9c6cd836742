"""Start supervisord and talk to it over its unix-socket XML-RPC API."""
from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit_core.errors import EnvironmentMissing

log = logging.getLogger("imagekit.runtime")

PR_SET_PDEATHSIG = 1


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path) -> None:
        super().__init__("localhost")
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.socket_path))


class UnixSocketTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket. (supervisor.xmlrpc has one too, but importing it pulls
    in supervisord's own HTTP server modules: megabytes of RSS in a process that only calls.)"""

    def __init__(self, socket_path: Path) -> None:
        super().__init__()
        self.socket_path = socket_path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection and self._connection[0] == "unix" and self._connection[1] is not None:
            return self._connection[1]
        connection = _UnixHTTPConnection(self.socket_path)
        self._connection = ("unix", connection)
        return connection


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # If the conductor is killed, supervisord gets SIGTERM and stops the steps it runs.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setsid()


@dataclass
class ProcessInfo:
    name: str
    state: str  # STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN
    exit_status: int
    pid: int
    description: str

    @classmethod
    def from_rpc(cls, info: dict[str, Any]) -> ProcessInfo:
        return cls(name=info["name"], state=info["statename"], exit_status=int(info["exitstatus"]),
                   pid=int(info["pid"]), description=info.get("description", ""))


class Supervisor:
    """A supervisord child process and an XML-RPC proxy to it."""

    def __init__(self, config: Path, socket_path: Path, log_file: Path, pass_fds: tuple[int, ...] = ()) -> None:
        self.config = config
        self.socket_path = socket_path
        self.log_file = log_file
        self.pass_fds = pass_fds  # inherited by supervisord and every process it spawns (run/shard_lock.py)
        self.process: subprocess.Popen[bytes] | None = None
        self.rpc: Any = self._proxy()

    def _proxy(self) -> Any:
        return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=UnixSocketTransport(self.socket_path))

    def start(self, timeout: float = 15.0) -> None:
        command = [sys.executable, "-m", "imagekit_runtime.supervise.supervisord", "-c", str(self.config)]
        runtime_path = str(Path(__file__).resolve().parent.parent)
        environment = {**os.environ,
                       "PYTHONPATH": os.pathsep.join(filter(None, [runtime_path, os.environ.get("PYTHONPATH")]))}
        log.debug("$ %s", " ".join(command))
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, preexec_fn=_die_with_parent, env=environment,
                                            pass_fds=self.pass_fds)
        except FileNotFoundError as exc:
            raise EnvironmentMissing("supervisord could not be started: install supervisor") from exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise EnvironmentMissing(f"supervisord exited at start: {error.strip() or 'see ' + str(self.log_file)}")
            try:
                if self.rpc.supervisor.getState()["statename"] == "RUNNING":
                    return
            except (OSError, xmlrpc.client.Fault, http.client.HTTPException):
                self.rpc = self._proxy()  # a refused connection leaves the transport unusable
            time.sleep(0.005)
        raise EnvironmentMissing(f"supervisord did not answer on {self.socket_path} within {timeout:.0f}s")

    def start_process(self, name: str) -> int:
        """Spawn the step's process; its pid (0 when it already ended: ask process_info)."""
        try:
            return int(self.rpc.imagekit.start(name))
        except xmlrpc.client.Fault as fault:
            # supervisord reaps at once and reports a process that already exited non-zero as
            # SPAWN_ERROR ("Bad exit code"); its state (EXITED and the status, or FATAL) tells the rest.
            if "SPAWN_ERROR" not in fault.faultString:
                raise
            return 0

    def process_info(self, name: str) -> ProcessInfo:
        """One process's state, after supervisord reaped what has exited (rpc.py)."""
        return ProcessInfo.from_rpc(self.rpc.imagekit.ended(name))

    def stop_process(self, name: str) -> None:
        try:
            self.rpc.supervisor.stopProcess(name, False)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def all_info(self) -> dict[str, ProcessInfo]:
        return {info["name"]: ProcessInfo.from_rpc(info) for info in self.rpc.supervisor.getAllProcessInfo()}

    def shutdown(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.rpc.supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault, xmlrpc.client.ProtocolError):
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
