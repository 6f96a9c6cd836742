"""A registry of the bench's own, empty: what "first push" means for a registry.

The machine's registry (127.0.0.1:5000) keeps every blob pushed to it, and a layer pushed in one round is
there for the next: its "first" push then sends nothing (Docker mounts it from the other repository). Each
round of bench_build.py pushes to a registry that starts empty instead: Debian's docker-registry, serving
a fresh directory on a loopback port (engines speak plain HTTP to loopback registries), stopped and removed
at the end of the round.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CONFIG = """\
version: 0.1
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@contextlib.contextmanager
def private_registry(root: Path, port: int) -> Iterator[str]:
    """An empty registry on 127.0.0.1:port, its blobs under root; yields its address."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "data", port=port))
    address = f"127.0.0.1:{port}"
    with open(root / "registry.log", "wb") as log:
        server = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bench's registry on {address} did not start: "
                                       f"{(root / 'registry.log').read_text()[-1000:]}") from None
                time.sleep(0.1)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
