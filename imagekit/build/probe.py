"""What the base image is, asked once per image ID from its own python3 (a throwaway container).

The answer decides which wheels fit (Python version, machine, glibc) and what the runtime
base's layers add to it (runtimebase.py): whether supervisor and pyyaml are there, where
site-packages is, the base's /etc/passwd and /etc/group, and the owners and modes of the
directories the runtime layers pass through. It is cached in the imagekit cache by image ID.
"""
from __future__ import annotations

import json
import os
from typing import Any

from imagekit_core.cachedir import cache_root

from .backend import Backend

PROBE_FORMAT = "2"  # bump when the script below answers more

PROBE_SCRIPT = r"""
import json, os, platform, shutil, sys, sysconfig
from pathlib import PurePosixPath
libc = ""
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    pass
purelib = sysconfig.get_paths()["purelib"]
directories = ["/etc", "/home", "/opt", "/usr", "/usr/local", "/usr/local/bin", "/var", "/var/lib"]
directories += [str(p) for p in PurePosixPath(purelib).parents if str(p) != "/"]
def has(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False
def stat(path):
    s = os.stat(path)
    return [s.st_mode & 0o7777, s.st_uid, s.st_gid]
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "implementation": sys.implementation.name,
    "machine": platform.machine(),
    "libc": libc,
    "supervisor": has("supervisor.supervisord"),
    "yaml": has("yaml"),
    "prometheus": has("prometheus_client"),
    "purelib": purelib,
    "programs": [name for name in ("supervisord", "supervisorctl") if shutil.which(name)],
    "files": {path: open(path).read() for path in ("/etc/passwd", "/etc/group") if os.path.isfile(path)},
    "stats": {path: stat(path) for path in directories + ["/etc/passwd", "/etc/group"] if os.path.exists(path)},
}))
"""


def probe_output(output: str) -> dict[str, Any]:
    """The JSON line PROBE_SCRIPT printed."""
    line = [text for text in output.strip().splitlines() if text.startswith("{")][-1]
    data: dict[str, Any] = json.loads(line)
    return data


def probe_base(backend: Backend, base_image_id: str) -> dict[str, Any]:
    """PROBE_SCRIPT's answer for an image, from the cache or from a throwaway container."""
    cache_file = (cache_root() / "probes" /
                  f"{PROBE_FORMAT}-{backend.name}-{base_image_id.removeprefix('sha256:')[:32]}.json")
    if cache_file.is_file():
        cached: dict[str, Any] = json.loads(cache_file.read_text())
        return cached
    data = probe_output(backend.run_python(base_image_id, PROBE_SCRIPT))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache_file.with_suffix(f".{os.getpid()}.part")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, cache_file)
    return data
