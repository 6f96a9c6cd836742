"""Sources and sinks on emulated pods, end to end: tests/data/pipelines/s3-sum reads its numbers from S3 per
shard (moto's server on the gateway of a Docker network the test run made), sums them and sinks the sum back.

One pod is failed mid-run (`imagekit pod kill --level pod`, shm lost, the SSD kept) while `sum` is held; the
replacement resumes without downloading its unchanged source again (0 bytes served), and the bucket ends
with the right total of every shard. The credentials reach the pods only through the rendered envFrom
Secret (`deploy render --s3-secret`, emulated by `pod up --secret NAME=FILE`): never the manifests, the set's
state, the journal or a log.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import imagekit
from fixtures_s3 import FAKE_CREDENTIALS
from fixtures_s3pods import S3_SUM_PIPELINE, S3Network
from imagekit_core import contract

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # about 30 s: two pods, one failed and resumed

BUCKET = "imagekit-test"  # as s3-sum's pipeline.yaml names it
COUNT = 5000              # numbers per shard
SECRET = "s3-credentials"
SECRET_VALUE = "not-in-any-log-" + uuid.uuid4().hex[:8]  # moto takes any secret key


def numbers(shard: int) -> list[int]:
    return list(range(shard * COUNT + 1, (shard + 1) * COUNT + 1))


def upload_numbers(s3: S3Network, prefix: str, shards: int) -> None:
    client = s3.server.client()
    if BUCKET not in {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    for shard in range(shards):
        body = "".join(f"{n}\n" for n in numbers(shard)).encode()
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/numbers/shard-{shard:05d}.txt", Body=body)


def sink_objects(s3: S3Network, prefix: str) -> dict[str, str]:
    client = s3.server.client()
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/totals/").get("Contents", [])
    return {item["Key"].removeprefix(f"{prefix}/"): client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode()
            for item in listed}


def test_s3_sources_and_sinks_survive_a_pod_failure(pod_sets: Any, s3_sum_image: str, s3_network: S3Network,
                                                    docker_client: Any, tmp_path: Path) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    upload_numbers(s3_network, prefix, 2)
    secret = tmp_path / "s3.env"
    secret.write_text(f"AWS_ACCESS_KEY_ID={FAKE_CREDENTIALS['AWS_ACCESS_KEY_ID']}\nAWS_SECRET_ACCESS_KEY={SECRET_VALUE}\n")
    pods = pod_sets(S3_SUM_PIPELINE, s3_sum_image, 2, "--ssd", "local-pv", "--s3-secret", SECRET,
                    "--env", f"{contract.S3_ENDPOINT_URL}={s3_network.server.endpoint}",
                    "--env", f"{contract.S3_REGION}={FAKE_CREDENTIALS['AWS_REGION']}")
    ordinal = 1
    gate = pods.claim("pv", ordinal) / "gates" / "hold-sum"
    gate.parent.mkdir(parents=True)
    gate.touch()
    pods.up("--param", f"PREFIX={prefix}", "--network", s3_network.network, "--secret", f"{SECRET}={secret}")

    pods.wait(0, lambda p: p["phase"] == "Complete", "shard 0 complete", timeout=120)
    first = pods.wait(ordinal, lambda p: p["run"]["steps"].get("sum") == "running"
                      and "source.numbers/numbers@ssd" in p["run"]["checkpointed"],
                      "sum held with its source fetched and checkpointed", timeout=120)
    assert first["run"]["started"] == ["source.numbers", "sum"]
    s3_network.server.reset()  # from here on: what the failed pod's replacement reads

    killed = imagekit("pod", "kill", str(ordinal), "--level", "pod", "--step", "sum", "--state-dir", pods.state_dir)
    assert killed.returncode == 0, killed.stderr
    # A new pod, a new shm: its journal holds one run, the replacement's.
    held = pods.wait(ordinal, lambda p: p["run"]["started_at"] != first["run"]["started_at"]
                     and p["run"]["steps"].get("sum") == "running", "the replacement pod held at sum again", timeout=120)
    assert held["run"]["started"] == ["sum"]  # the source was not fetched again: restored from the SSD
    assert held["run"]["restored"] == {"source.numbers/numbers": "ssd"}
    assert held["run"]["steps"]["source.numbers"] == "reused"
    assert s3_network.server.served()["get_bytes"] == 0
    gate.unlink()

    statuses = pods.status("--wait", "--timeout", "120")
    assert [s["phase"] for s in statuses] == ["Complete", "Complete"]
    assert s3_network.server.served()["get_bytes"] == 0  # the sink uploads; nothing was read again
    expected = {f"totals/shard-{shard}.txt": f"{COUNT} {sum(numbers(shard))}\n" for shard in (0, 1)}
    assert sink_objects(s3_network, prefix) == expected

    # The credential went in through the Secret only.
    for path in [*pods.rendered.rglob("*"), *pods.state_dir.rglob("*.json"), *pods.state_dir.rglob("*.log"),
                 *pods.state_dir.rglob("*.jsonl")]:
        if path.is_file():
            assert SECRET_VALUE not in path.read_text(errors="replace"), path
    for shard in (0, 1):
        logs = imagekit("pod", "logs", str(shard), "--state-dir", pods.state_dir)
        assert logs.returncode == 0 and SECRET_VALUE not in logs.stdout + logs.stderr
        container = docker_client.containers.get(pods.container(shard, "pipeline"))
        assert f"AWS_SECRET_ACCESS_KEY={SECRET_VALUE}" in container.attrs["Config"]["Env"]  # it did reach the pod
        journal = (f"{contract.DEFAULT_SHM_DIR}/s3-sum/{contract.shard_dir_name(shard)}/{contract.RUN_DIR_NAME}/"
                   f"{contract.JOURNAL_FILE}")
        code, text = container.exec_run(["cat", journal])
        assert code == 0 and b"run-start" in text and SECRET_VALUE.encode() not in text
