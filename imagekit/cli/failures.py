"""What a user sees when a command fails: one line and an exit code, never a traceback.

`explain` turns an exception into that line and its exit code: imagekit's typed
errors carry both; usage errors, network, registry and engine failures are
classified here. Anything else is a bug: `write_crash_report` keeps the full
trace in a file, and the user gets one line naming it and exit 4.
"""
from __future__ import annotations

import ssl
import sys
import urllib.error

try:  # typer vendors its own click from 0.2x on; the errors it raises are that click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - an older typer on the real click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from imagekit_core.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, ImagekitError, one_line, write_crash_report

__all__ = ["click_errors", "explain", "one_line", "write_crash_report"]  # click_errors: the one place that picks the click

# HTTP statuses that mean "this reference names nothing": the user's input, not the environment.
NOT_FOUND = (404,)
DENIED = (401, 403)


def _http_error(exc: urllib.error.HTTPError) -> tuple[int, str]:
    url = exc.url or exc.filename or "the registry"
    if exc.code in DENIED:
        return EXIT_ENVIRONMENT, (f"{url}: access denied (HTTP {exc.code}) (fix: log in with `docker login HOST` "
                                  f"or check the credentials in ~/.docker/config.json)")
    if exc.code in NOT_FOUND:
        return EXIT_BAD_INPUT, f"{url}: not found (HTTP 404) (fix: check the image reference)"
    return EXIT_ENVIRONMENT, (f"{url}: the server answered HTTP {exc.code} {exc.reason} "
                              f"(fix: retry, or check the server)")


def _network_error(exc: BaseException) -> tuple[int, str] | None:
    if isinstance(exc, urllib.error.HTTPError):
        return _http_error(exc)
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, ssl.SSLError):
        return EXIT_ENVIRONMENT, f"TLS failed: {reason} (fix: check the address and the server's certificate)"
    if isinstance(reason, (TimeoutError, ConnectionError)) or isinstance(exc, urllib.error.URLError):
        what = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason) or "timed out"
        return EXIT_ENVIRONMENT, f"network: {what} (fix: check that the server is running and reachable)"
    return None


def _engine_error(exc: BaseException) -> tuple[int, str] | None:
    docker_errors = sys.modules.get("docker.errors")  # not imported, so not one of its errors
    if docker_errors is not None and isinstance(exc, docker_errors.DockerException):
        return EXIT_ENVIRONMENT, f"docker engine: {exc} (fix: check that dockerd is running and reachable)"
    return None


def explain(exc: BaseException, command: str = "imagekit") -> tuple[int, str] | None:
    """The exit code and the one line for exc, or None when it is a bug."""
    if isinstance(exc, ImagekitError):
        return exc.exit_code, one_line(str(exc))
    if isinstance(exc, click_errors.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else command
        return EXIT_BAD_INPUT, one_line(f"{where}: {exc.format_message()} (fix: see `{where} --help`)")
    if isinstance(exc, click_errors.ClickException):
        return exc.exit_code, one_line(exc.format_message())
    found = _network_error(exc) or _engine_error(exc)
    if found is not None:
        return found[0], one_line(found[1])
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return EXIT_ENVIRONMENT, one_line(f"{where}{exc.strerror or exc} (fix: check the path and its permissions)")
    return None
