"""Environment failures and bugs as a user meets them: a registry that refuses (exit 3), an image it lacks
(exit 2), a bug in imagekit or in the runtime's entry (exit 4, one line naming the file with the trace), and
the same at the process boundary, where the point is stderr and the exit code."""
from __future__ import annotations

import contextlib
import http.server
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import EXAMPLES, imagekit, serving
from refusal_support import COMMAND_MISSING, NOT_UTF8, assert_refused, cli, good, write_case

# Registries and bugs: environment failures are exit 3, a missing image 2, a bug 4 with the trace in a file.

@dataclass
class FakeRegistry:
    """A registry on 127.0.0.1 that answers every manifest request with one status (and /v2/ with 200)."""

    status: int
    challenge: str | None = None
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def fake_registry() -> Iterator[Callable[[int, str | None], FakeRegistry]]:
    def start(status: int, challenge: str | None = None) -> FakeRegistry:
        registry = FakeRegistry(status, challenge)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server name
                self.send_response(200 if self.path == "/v2/" else registry.status)
                if registry.challenge and self.path != "/v2/":
                    self.send_header("WWW-Authenticate", registry.challenge.replace("HOST", registry.host))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        registry.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.enter_context(serving(registry.server))
        return registry

    with contextlib.ExitStack() as servers:
        yield start


@pytest.mark.parametrize("status, challenge, code, words", [
    (401, 'Bearer realm="http://HOST/token",service="fake"', 3, ("HTTP 401", "docker login")),
    (401, "Bearer service=fake", 3, ("without a realm",)),
    (401, None, 3, ("HTTP 401",)),
    (403, None, 3, ("HTTP 403",)),
    (404, None, 2, ("has no image", "check the image reference")),
    (500, None, 3, ("HTTP 500",)),
], ids=["401 token refused", "401 no realm", "401", "403", "404", "500"])
def test_registry_failures_are_one_line(capsys: pytest.CaptureFixture[str], fake_registry: Callable[..., FakeRegistry],
                                        status: int, challenge: str | None, code: int, words: tuple[str, ...]) -> None:
    registry = fake_registry(status, challenge)
    got, err = cli(capsys, "inspect", "--source", "registry", f"{registry.host}/wordfreq:v1")
    assert_refused(got, err, code, *words)


def test_registry_refusing_connections_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    got, err = cli(capsys, "inspect", "--source", "registry", "127.0.0.1:1/wordfreq:v1")
    assert_refused(got, err, 3, "127.0.0.1:1", "unreachable")


def test_a_bug_is_one_line_naming_the_crash_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: object) -> None:
        raise RuntimeError("something imagekit did not expect")

    monkeypatch.setattr("imagekit.cli.validate.load_pipeline", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code, err = cli(capsys, "validate", good(tmp_path))
    assert_refused(code, err, 4, "internal error", "RuntimeError", "something imagekit did not expect")
    [report] = tmp_path.glob("imagekit-crash-*.txt")
    assert str(report) in err
    assert "Traceback" in report.read_text() and "def broken" not in err

    code, err = cli(capsys, "--verbose", "validate", good(tmp_path))
    assert code == 4 and "Traceback" in err and "RuntimeError" in err


def test_a_bug_in_the_runtime_entry_is_one_line_naming_the_crash_file(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's entry point (imagekit_runtime.main) keeps the same promise as the CLI: exit 4, one line."""
    from imagekit_runtime import main as runtime_main

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something the runtime did not expect")

    monkeypatch.setattr(runtime_main, "run_pipeline", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    code = runtime_main.main(["run", str(good(tmp_path))])
    err = capsys.readouterr().err
    assert code == 4
    assert err.count("\n") == 1 and "internal error" in err and "Traceback" not in err
    [report] = tmp_path.glob("imagekit-runtime-crash-*.txt")
    assert str(report) in err and "Traceback" in report.read_text()


# At the process boundary: what a shell sees.

def test_markup_in_paths_and_fixes_is_printed_literally(tmp_path: Path) -> None:
    case = COMMAND_MISSING
    pipeline = write_case(tmp_path / "[/x]" / "[bold]", case)
    result = imagekit("validate", pipeline)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "[/x]/[bold]/p/steps/use/step.yaml" in line and "`command: [python3, main.py]`" in line, line


def test_process_exit_codes_and_one_line(tmp_path: Path, fake_registry: Callable[..., FakeRegistry]) -> None:
    not_utf8 = write_case(tmp_path / "a", NOT_UTF8)
    refused = imagekit("run", not_utf8, "--no-checkpoints")
    registry = fake_registry(401, 'Bearer realm="http://HOST/token"')
    denied = imagekit("inspect", "--source", "registry", f"{registry.host}/wordfreq:v1")
    usage = imagekit("deploy", "render", EXAMPLES / "wordfreq", "--image", "127.0.0.1:5000/w:1", "--flavor", "helm")
    for result, code in ((refused, 2), (denied, 3), (usage, 2)):
        assert result.returncode == code, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: "), result.stderr
