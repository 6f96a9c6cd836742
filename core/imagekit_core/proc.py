"""The one wrapper every subprocess call goes through: logs the command, raises a typed error."""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagekit_core.errors import CommandFailed, EnvironmentMissing

log = logging.getLogger("imagekit.proc")


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run argv; on a non-zero exit raise CommandFailed with its output, on a missing program EnvironmentMissing."""
    args = [os.fspath(a) for a in argv]
    log.debug("$ %s", shlex.join(args))
    try:
        result = subprocess.run(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise EnvironmentMissing(f"{args[0]} not found: install it or put it on PATH") from exc
    if check and result.returncode != 0:
        output = (result.stdout or b"").decode(errors="replace")
        log.debug("exit %d: %s", result.returncode, output[-2000:])
        raise CommandFailed(args, result.returncode, output)
    return result
