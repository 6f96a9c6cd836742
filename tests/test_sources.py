"""Sources and sinks against real servers: moto's S3 server, a loopback HTTP server, file:// paths.

A pipeline reads numbers from an S3 source per shard and sinks their total; killed mid-run (kill -9 of
the runtime) and resumed, it fetches 0 bytes of its unchanged source and leaves the right sink. Each
error gives its one line and exit code.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Locations, journal_entries, serving, started_steps, write_step
from fixtures_s3 import MotoS3, moto_s3, start_moto_s3  # noqa: F401 (the fixture)
from imagekit_core import contract
from imagekit_core.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT

SUM_STEP = ('[ -e "$HOLD" ] && while [ -e "$HOLD" ]; do sleep 0.02; done\n'
            'awk \'{ s += $1 } END { print s }\' "$IMAGEKIT_IN_NUMBERS" > "$IMAGEKIT_OUT_TOTAL"\n')


def numbers_text(shard: int, count: int = 1000) -> str:
    return "".join(f"{shard * 1000 + i}\n" for i in range(1, count + 1))


def total_of(shard: int, count: int = 1000) -> str:
    return f"{sum(shard * 1000 + i for i in range(1, count + 1))}\n"


def sum_pipeline(root: Path, sources: dict[str, str], sinks: dict[str, str] | None = None,
                 shards: int = 2, step: str = SUM_STEP, inputs: tuple[str, ...] = ("numbers",)) -> Path:
    write_step(root / "steps", "sum", step, inputs=inputs, outputs=["total"])
    config: dict[str, Any] = {"name": "nums", "steps": ["steps/sum"], "shm": "256Mi", "shards": shards,
                              "params": {"HOLD": str(root / "hold")}, "sources": sources,
                              "results": ["total"]}
    if sinks:
        config["sinks"] = sinks
    path = root / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_env(moto: MotoS3 | None = None, **extra: str) -> dict[str, str]:
    environment = {**os.environ, **(moto.env() if moto else {}), **extra}
    environment["PYTHONPATH"] = os.pathsep.join(sys.path)
    return environment


def runtime(pipeline: Path, locations: Locations, shard: int, env: dict[str, str], *extra: str,
            check: int | None = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), *locations.args(),
                             "--shard-index", str(shard), "--output", "json", *extra],
                            env=env, capture_output=True, text=True, timeout=120)
    if check is not None:
        assert result.returncode == check, result.stderr
    return result


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return dict(json.loads(result.stdout))


def step_of(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(step for step in summary["steps"] if step["name"] == name)


@pytest.fixture
def buckets(moto_s3: MotoS3) -> MotoS3:  # noqa: F811
    moto_s3.bucket("data")
    moto_s3.bucket("results")
    client = moto_s3.client()
    for shard in range(2):
        client.put_object(Bucket="data", Key=f"numbers/part-{shard:05d}.txt", Body=numbers_text(shard).encode())
    return moto_s3


def sink_text(moto: MotoS3, key: str) -> str:
    return str(moto.client().get_object(Bucket="results", Key=key)["Body"].read().decode())


S3_SOURCES = {"numbers": "s3://data/numbers/part-{shard:05d}.txt"}
S3_SINKS = {"total": "s3://results/{pipeline}/shard-{shard}-of-{shard_count}/total"}


@pytest.mark.slow  # 4 s or more
def test_each_shard_reads_its_s3_object_and_sinks_its_total(tmp_path: Path, buckets: MotoS3) -> None:
    pipeline = sum_pipeline(tmp_path, S3_SOURCES, S3_SINKS)
    locations = Locations(tmp_path / "run")
    for shard in range(2):
        result = runtime(pipeline, locations, shard, run_env(buckets))
        summary = summary_of(result)
        assert [s["name"] for s in summary["steps"]] == ["source.numbers", "sum", "sink.total"]
        fetched = step_of(summary, "source.numbers")
        assert fetched["state"] == "retired" and fetched["bytes_out"] >= len(numbers_text(shard))  # blocks in shm
        assert step_of(summary, "sink.total")["state"] in ("retired", "committed")
        assert "transfers: source.numbers" in result.stderr
        assert sink_text(buckets, f"nums/shard-{shard}-of-2/total") == total_of(shard)
    journal = journal_entries(locations.journal("nums", 1))
    assert any(e.get("step") == "source.numbers" and e.get("to") == "committed" for e in journal)


@pytest.mark.parametrize("shm_lost", [False, True], ids=["container-restart", "pod-failure"])
def test_a_resume_after_kill_9_fetches_no_byte_of_an_unchanged_source(
        tmp_path: Path, buckets: MotoS3, shm_lost: bool) -> None:
    pipeline = sum_pipeline(tmp_path, S3_SOURCES, S3_SINKS)
    locations = Locations(tmp_path / "run")
    hold = tmp_path / "hold"
    hold.touch()
    buckets.reset()
    process = subprocess.Popen([sys.executable, "-m", "imagekit_runtime", "run", str(pipeline), *locations.args(),
                                "--shard-index", "1"], env=run_env(buckets), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = locations.journal("nums", 1)
    deadline = time.monotonic() + 60

    def checkpointed() -> bool:  # the source is on the SSD, and its consumer runs
        entries = journal_entries(journal) if journal.exists() else []
        if not any(e["event"] == contract.Event.RUN_START for e in entries):
            return False
        return "sum" in started_steps(journal) and any(
            e["event"] == contract.Event.CHECKPOINTED and e.get("step") == "source.numbers" for e in entries)

    while not checkpointed():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the runtime, supervisord and the step, at once
    process.wait()
    assert buckets.served()["get_bytes"] == len(numbers_text(1))
    if shm_lost:  # a pod failure: shm is gone, the SSD checkpoint stays
        shutil.rmtree(locations.shm)
    hold.unlink()
    buckets.reset()
    result = runtime(pipeline, locations, 1, run_env(buckets))
    assert buckets.served()["get_bytes"] == 0, result.stderr
    assert "source.numbers" not in started_steps(journal)
    plan = [e for e in journal_entries(journal) if e["event"] == contract.Event.PLAN][-1]
    assert "source.numbers" in plan["reused"]
    assert plan["restore"] == ({"source.numbers/numbers": "ssd"} if shm_lost else {})
    assert sink_text(buckets, "nums/shard-1-of-2/total") == total_of(1)


@pytest.mark.slow  # 4 s or more
def test_a_changed_object_is_fetched_again(tmp_path: Path, buckets: MotoS3) -> None:
    pipeline = sum_pipeline(tmp_path, S3_SOURCES, S3_SINKS, shards=1)
    locations = Locations(tmp_path / "run")
    runtime(pipeline, locations, 0, run_env(buckets))
    buckets.client().put_object(Bucket="data", Key="numbers/part-00000.txt", Body=b"5\n6\n")
    buckets.reset()
    summary = summary_of(runtime(pipeline, locations, 0, run_env(buckets)))
    assert step_of(summary, "source.numbers")["state"] == "retired"
    assert buckets.served()["get_bytes"] == 4
    assert sink_text(buckets, "nums/shard-0-of-1/total") == "11\n"


def test_a_prefix_source_becomes_a_directory_and_a_directory_sink_gets_its_marker_last(
        tmp_path: Path, buckets: MotoS3) -> None:
    client = buckets.client()
    for name in ("a.txt", "sub/b.txt"):
        client.put_object(Bucket="data", Key=f"many/shard-0/{name}", Body=b"1\n2\n")
    step = ('mkdir -p "$IMAGEKIT_OUT_TOTAL" && cat "$IMAGEKIT_IN_NUMBERS/a.txt" "$IMAGEKIT_IN_NUMBERS/sub/b.txt" '
            '| awk \'{ s += $1 } END { print s }\' > "$IMAGEKIT_OUT_TOTAL/sum"\n')
    pipeline = sum_pipeline(tmp_path, {"numbers": "s3://data/many/shard-{shard}/"},
                            {"total": "s3://results/dir/{shard}"}, shards=1, step=step)
    buckets.reset()
    runtime(pipeline, Locations(tmp_path / "run"), 0, run_env(buckets))
    assert buckets.served()["get_bytes"] == 8
    assert sink_text(buckets, "dir/0/sum") == "6\n"
    assert sink_text(buckets, f"dir/0/{contract.SINK_SUCCESS_MARKER}") == ""


def test_a_file_source_and_a_file_sink(tmp_path: Path) -> None:
    data = tmp_path / "mounted"
    data.mkdir()
    (data / "part-0.txt").write_text(numbers_text(0))
    pipeline = sum_pipeline(tmp_path, {"numbers": f"file://{data}/part-{{shard}}.txt"},
                            {"total": f"file://{tmp_path}/out/{{shard}}/"}, shards=1)
    summary = summary_of(runtime(pipeline, Locations(tmp_path / "run"), 0, run_env()))
    assert step_of(summary, "source.numbers")["bytes_out"] >= len(numbers_text(0))
    assert (tmp_path / "out" / "0" / "total").read_text() == total_of(0)


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}", root


def test_an_http_source(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "0.txt").write_text(numbers_text(0))
    pipeline = sum_pipeline(tmp_path, {"numbers": base + "/{shard}.txt"}, shards=1)
    locations = Locations(tmp_path / "run")
    runtime(pipeline, locations, 0, run_env())
    assert (locations.results / "total").read_text() == total_of(0)


@pytest.mark.parametrize(("sources", "sinks", "problem"), [
    ({"numbers": "s3://data/numbers/missing-{shard}.txt"}, None, "object not found"),
    ({"numbers": "s3://no-such-bucket/x-{shard}.txt"}, None, "bucket not found"),
    ({"numbers": "s3://data/empty/{shard}/"}, None, "no objects under this prefix"),
    ({"numbers": "s3://data/numbers/part-{shard:05d}.txt"}, {"total": "s3://no-such-bucket/t"}, "bucket not found"),
])
def test_an_unreachable_s3_source_or_sink_is_one_line_and_exit_3(
        tmp_path: Path, buckets: MotoS3, sources: dict[str, str], sinks: dict[str, str] | None, problem: str) -> None:
    pipeline = sum_pipeline(tmp_path, sources, sinks, shards=1)
    result = runtime(pipeline, Locations(tmp_path / "run"), 0, run_env(buckets), check=EXIT_ENVIRONMENT)
    lines = result.stderr.strip().splitlines()
    name = "sink total" if sinks else "source numbers"
    assert len(lines) == 1 and lines[0].startswith(f"error: {name} (s3://") and problem in lines[0], result.stderr


def test_denied_credentials_and_a_down_endpoint_are_exit_3_without_secrets(tmp_path: Path, buckets: MotoS3) -> None:
    pipeline = sum_pipeline(tmp_path, S3_SOURCES, shards=1)
    down = run_env(buckets, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1",
                   AWS_SECRET_ACCESS_KEY="s3cr3t-value")
    result = runtime(pipeline, Locations(tmp_path / "run"), 0, down, check=EXIT_ENVIRONMENT)
    assert "source numbers (s3://data/numbers/part-00000.txt): cannot connect to the endpoint" in result.stderr
    assert "s3cr3t" not in result.stderr
    no_keys = {k: v for k, v in run_env(buckets, AWS_CONFIG_FILE="/dev/null",
                                         AWS_SHARED_CREDENTIALS_FILE="/dev/null").items()
               if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = runtime(pipeline, Locations(tmp_path / "run2"), 0, no_keys, check=EXIT_ENVIRONMENT)
    assert "no credentials" in result.stderr


def test_denied_access_is_exit_3(tmp_path: Path) -> None:
    import boto3
    with start_moto_s3(env={"INITIAL_NO_AUTH_ACTION_COUNT": "5"}) as locked:  # IAM enforced after the set-up
        admin = locked.client()
        admin.create_bucket(Bucket="locked")
        admin.put_object(Bucket="locked", Key="0.txt", Body=b"1\n")
        iam = boto3.client("iam", endpoint_url=locked.endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(UserName="reader", PolicyName="nothing-of-s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}))
        pipeline = sum_pipeline(tmp_path, {"numbers": "s3://locked/{shard}.txt"}, shards=1)
        env = run_env(locked, AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
        result = runtime(pipeline, Locations(tmp_path / "run"), 0, env, check=EXIT_ENVIRONMENT)
    assert result.stderr.strip() == ("error: source numbers (s3://locked/0.txt): access denied "
                                     "(check the credentials' permissions)")
    assert key["SecretAccessKey"] not in result.stderr


@pytest.mark.slow  # 4 s or more
def test_missing_file_and_http_sources_are_exit_3(tmp_path: Path, http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    for url, problem in ((f"file://{tmp_path}/nothing-{{shard}}", "file not found"),
                         (base + "/missing-{shard}.txt", "not found"),
                         ("http://127.0.0.1:9/{shard}", "cannot connect")):
        pipeline = sum_pipeline(tmp_path / problem.replace(" ", "-") / str(len(url)), {"numbers": url}, shards=1)
        result = runtime(pipeline, Locations(tmp_path / "run"), 0, run_env(), check=EXIT_ENVIRONMENT)
        assert f"error: source numbers ({url.replace('{shard}', '0')}): {problem}" in result.stderr


def test_a_bad_template_is_exit_2(tmp_path: Path) -> None:
    pipeline = sum_pipeline(tmp_path, {"numbers": "s3://data/{shrad}.txt"}, shards=1)
    result = runtime(pipeline, Locations(tmp_path / "run"), 0, run_env(), check=EXIT_BAD_INPUT)
    assert "sources.numbers: unknown placeholder {shrad}" in result.stderr


def test_status_shows_each_source_as_a_step_and_what_would_run(tmp_path: Path, buckets: MotoS3) -> None:
    pipeline = sum_pipeline(tmp_path, S3_SOURCES, S3_SINKS, shards=1)
    locations = Locations(tmp_path / "run")
    command = [sys.executable, "-m", "imagekit_runtime", "status", str(pipeline), *locations.args(), "--output", "json"]
    before = json.loads(subprocess.run(command, env=run_env(buckets), capture_output=True, text=True, check=True).stdout)
    assert {"data": "numbers", "step": "source.numbers"}.items() <= before["items"][0].items()
    assert before["would_run"] == ["source.numbers", "sum", "sink.total"]
    runtime(pipeline, locations, 0, run_env(buckets))
    after = json.loads(subprocess.run(command, env=run_env(buckets), capture_output=True, text=True, check=True).stdout)
    assert after["complete"] and after["would_run"] == []


class FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Answers 503 to the first GET of each path: a transient failure the fetch retries."""

    failed: set[str] = set()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path not in self.failed:
            self.failed.add(self.path)
            self.send_error(503)
            return
        super().do_GET()


def test_an_http_source_retries_a_transient_error(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    (root / "0.txt").write_text(numbers_text(0))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(FlakyHandler, directory=str(root)))
    with serving(server):
        pipeline = sum_pipeline(tmp_path, {"numbers": f"http://127.0.0.1:{server.server_address[1]}/{{shard}}.txt"},
                                shards=1)
        locations = Locations(tmp_path / "run")
        runtime(pipeline, locations, 0, run_env())
        assert (locations.results / "total").read_text() == total_of(0)
        assert FlakyHandler.failed == {"/0.txt"}


class StingyHandler(http.server.BaseHTTPRequestHandler):
    """No HEAD (405). /trickle.txt announces 100 bytes and sends one every 0.2 s; /half.txt announces 100 and
    sends 50, then closes."""

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_error(405)

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        if self.path == "/half.txt":
            self.wfile.write(b"1\n" * 25)
            self.wfile.flush()
            self.close_connection = True
            return
        for _ in range(100):
            self.wfile.write(b"1")
            self.wfile.flush()
            time.sleep(0.2)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("path", "words"), [("trickle.txt", "not complete within 1s"),
                                             ("half.txt", "50 bytes received, 100 announced")])
def test_an_http_source_has_an_overall_deadline_and_a_checked_length(tmp_path: Path, path: str, words: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StingyHandler)
    with serving(server):
        pipeline = sum_pipeline(tmp_path, {"numbers": f"http://127.0.0.1:{server.server_address[1]}/{path}"}, shards=1)
        locations = Locations(tmp_path / "run")
        started = time.monotonic()
        result = runtime(pipeline, locations, 0, {**run_env(), "IMAGEKIT_FETCH_DEADLINE": "1"}, check=None)
        assert result.returncode == 1 and words in result.stderr, result.stderr[-2000:]
        assert time.monotonic() - started < 60  # not the 20 s the trickle takes, times four attempts
        assert not (locations.results / "total").exists()


def test_a_pipe_inside_a_file_source_directory_is_one_line_not_a_hang(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "part-0.txt").write_text(numbers_text(0))
    os.mkfifo(data / "stuck")
    pipeline = sum_pipeline(tmp_path, {"numbers": f"file://{data}/"}, shards=1)
    result = runtime(pipeline, Locations(tmp_path / "run"), 0, run_env(), check=None)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "stuck is not a regular file" in result.stderr and "Traceback" not in result.stderr
