"""How fast the runtime's supervisord can go, without the conductor's loop around it.

Uses the runtime's own pieces (supervisor_conf.render, supervisor_client.Supervisor) on 20 programs that run
/bin/true, and times: supervisord's start (until it answers), one getAllProcessInfo (what the conductor polled
before it asked about one process), one `imagekit.ended` (Supervisor.process_info, what it asks now when a
pidfd fires), one start (`imagekit.start`, answering with the pid), and start → EXITED seen when asked back
to back (no sleep). Prints one JSON line of medians (seconds).
Run where the runtime is importable (in the bench image: PYTHONPATH=/opt/imagekit/runtime).
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from imagekit_core import contract
from imagekit_runtime.supervise.client import Supervisor
from imagekit_runtime.supervise.config import ProgramSpec, render

PROGRAMS = 20


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="ik-rpc-", dir="/tmp"))
    try:
        programs = [ProgramSpec(name=f"s{i:02d}", argv=("/bin/true",), directory=root,
                                environment={contract.STEP: f"s{i:02d}", "PYTHONUNBUFFERED": "1"},
                                log_file=root / f"s{i:02d}.log", stop_wait_seconds=10)
                    for i in range(1, PROGRAMS + 1)]
        (root / "logs").mkdir()
        socket_path = root / "s.sock"
        config = root / "supervisord.conf"
        config.write_text(render(socket_path, root, programs))
        supervisor = Supervisor(config, socket_path, root / "supervisord.log")
        started = time.perf_counter()
        supervisor.start()
        start_seconds = time.perf_counter() - started
        try:
            info_calls, one_calls = [], []
            for _ in range(50):
                t = time.perf_counter()
                supervisor.all_info()
                info_calls.append(time.perf_counter() - t)
                t = time.perf_counter()
                supervisor.process_info(programs[0].name)
                one_calls.append(time.perf_counter() - t)
            start_calls, exit_seen, polls = [], [], []
            for program in programs:
                t = time.perf_counter()
                supervisor.start_process(program.name)
                start_calls.append(time.perf_counter() - t)
                count = 0
                while supervisor.process_info(program.name).state not in ("EXITED", "FATAL"):
                    count += 1
                exit_seen.append(time.perf_counter() - t)
                polls.append(count + 1)
        finally:
            supervisor.shutdown()
        print(json.dumps({
            "programs": PROGRAMS,
            "supervisord_start": start_seconds,
            "all_info": statistics.median(info_calls),
            "process_info": statistics.median(one_calls),
            "start_process": statistics.median(start_calls),
            "start_to_exited_seen": statistics.median(exit_seen),
            "polls_until_exited": statistics.median(polls),
        }))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
