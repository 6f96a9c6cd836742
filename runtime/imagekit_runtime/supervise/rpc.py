"""The conductor's own XML-RPC namespace inside supervisord (`imagekit.*`): one process per call.

Loaded by supervisord from the generated configuration ([rpcinterface:imagekit]). It adds no
behaviour of its own, only calls shaped for the conductor, whose cost does not grow with the
number of steps:

    imagekit.start(name) -> pid       startProcess without waiting, answering with the pid to watch
    imagekit.ended(name) -> info      reap first, then getProcessInfo: the conductor calls it when the
                                      process's pidfd turned readable, so the exit status is there,
                                      without waiting for supervisord's loop to notice the child's end
"""
from __future__ import annotations

from typing import Any

from supervisor.rpcinterface import SupervisorNamespaceRPCInterface


class ImagekitNamespace:
    def __init__(self, supervisord: Any) -> None:
        self.supervisord = supervisord
        self.main = SupervisorNamespaceRPCInterface(supervisord)

    def start(self, name: str) -> int:
        """Spawn the process (a fault as startProcess raises it); its pid, 0 if it already ended."""
        self.main.startProcess(name, False)
        _, process = self.main._getGroupAndProcess(name)
        return int(process.pid or 0)

    def ended(self, name: str) -> dict[str, Any]:
        self.supervisord.reap()
        _, process = self.main._getGroupAndProcess(name)
        if process is not None:
            process.transition()
        info: dict[str, Any] = self.main.getProcessInfo(name)
        return info


def make_interface(supervisord: Any, **_config: Any) -> ImagekitNamespace:
    return ImagekitNamespace(supervisord)
