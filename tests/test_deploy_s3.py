"""`imagekit deploy render --s3-secret NAME --env KEY=VALUE`: S3 settings as plain env, credentials from a Secret.

The credentials reach the pod only through `envFrom: [{secretRef: …}]`: never as a value in the manifest.
Every rendering here also goes through the full validation (schemas, webhook, API and imagekit rules).
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from imagekit.cli.main import make_app
from imagekit_core import contract
from imagekit_core.spec import load_pipeline
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.renderer import Manifest, Rendering, render
from imagekit_deploy.schemas import DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions
from imagekit_deploy.settings import Flavor, resolve_settings
from imagekit_deploy.validate import validate_rendering

app = make_app(["deploy"])  # the command CliRunner invokes

REPO = Path(__file__).resolve().parents[1]
WORDFREQ = REPO / "pipelines" / "wordfreq"
IMAGE = "registry.example.com/imagekit/pipeline:1.0"
ENDPOINT = "http://minio.storage.svc:9000"
KUBERNETES_VERSIONS = sorted({DEFAULT_KUBERNETES_VERSION, available_kubernetes_versions()[-1]})
runner = CliRunner()


def rendered(flavor: Flavor = Flavor.kruise, **options) -> Rendering:
    spec = load_pipeline(WORDFREQ)
    return render(spec, resolve_settings(spec, RenderFlags(image=IMAGE, flavor=flavor, **options)))


def container(rendering: Rendering) -> dict:
    return rendering.pod_template()["spec"]["containers"][0]


S3_OPTIONS: dict[str, Any] = {"s3_secret": "wordfreq-s3",
                              "env": (f"{contract.S3_ENDPOINT_URL}={ENDPOINT}", f"{contract.S3_REGION}=eu-west-1")}


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("flavor", list(Flavor), ids=[f.value for f in Flavor])
def test_the_secret_comes_in_through_env_from_and_the_endpoint_as_plain_env(flavor, kubernetes_version):
    rendering = rendered(flavor, **S3_OPTIONS)
    pipeline = container(rendering)
    assert pipeline["envFrom"] == [{"secretRef": {"name": "wordfreq-s3"}}]
    env = {entry["name"]: entry for entry in pipeline["env"]}
    assert env[contract.S3_ENDPOINT_URL] == {"name": contract.S3_ENDPOINT_URL, "value": ENDPOINT}
    assert env[contract.S3_REGION]["value"] == "eu-west-1"
    assert not set(contract.S3_CREDENTIALS) & set(env)
    # Only the pipeline container: the SSD init container needs no credentials.
    assert all("envFrom" not in init for init in rendering.pod_template()["spec"].get("initContainers", []))
    assert validate_rendering(rendering, kubernetes_version=kubernetes_version).problems == []


def test_without_the_flags_the_pod_is_as_before():
    plain = container(rendered())
    assert "envFrom" not in plain
    assert all(entry["name"].startswith("IMAGEKIT_") for entry in plain["env"])
    with_s3 = container(rendered(**S3_OPTIONS))
    with_s3.pop("envFrom")
    with_s3["env"] = [entry for entry in with_s3["env"] if not entry["name"].startswith("AWS_")]
    assert with_s3 == plain


def test_cli_renders_validates_and_summarises(tmp_path):
    out = tmp_path / "manifests"
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, "--s3-secret", "wordfreq-s3",
                                 "--env", f"{contract.S3_ENDPOINT_URL}={ENDPOINT}", "-o", "json", "-d", str(out)])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["s3_secret"] == "wordfreq-s3"
    assert summary["env"] == [contract.S3_ENDPOINT_URL]
    workload = yaml.safe_load((out / "statefulset.yaml").read_text())
    assert workload["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "wordfreq-s3"}}]
    check = runner.invoke(app, ["deploy", "validate", str(out)])
    assert check.exit_code == 0, check.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--env", "AWS_SECRET_ACCESS_KEY=hunter2"], "--s3-secret"),
    (["--env", "AWS_ACCESS_KEY_ID=AKIA"], "Secret"),
    (["--env", f"{contract.SHM_DIR}=/dev/shm/x"], "IMAGEKIT_"),
    (["--env", "no-equals-sign"], "KEY=VALUE"),
    (["--env", "1BAD=x"], "KEY=VALUE"),
    (["--env", "AWS_REGION=a", "--env", "AWS_REGION=b"], "twice"),
    (["--s3-secret", "Bad_Secret"], "--s3-secret"),
    (["--run", "night/42"], "--run"),
    (["--env", f"{contract.RUN_NAME}=x"], "--run"),
], ids=["secret-key", "access-key", "runtime-variable", "no-equals", "bad-name", "twice", "bad-secret-name", "bad-run",
        "run-as-env"])
def test_bad_s3_flags_are_refused_in_one_line(tmp_path, args, words):
    result = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE, *args, "-d", str(tmp_path / "out")])
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "fix:" in lines[0], result.stderr
    assert words in lines[0]
    assert "hunter2" not in result.stderr  # a refused credential is not echoed
    assert not (tmp_path / "out").exists()


def _broken(mutate) -> Rendering:
    rendering = rendered(**S3_OPTIONS)
    manifests = []
    for manifest in rendering.manifests:
        body = copy.deepcopy(manifest.body)
        if manifest.kind == "StatefulSet":
            mutate(body["spec"]["template"]["spec"]["containers"][0])
        manifests.append(Manifest(manifest.filename, body))
    return Rendering(rendering.flavor, tuple(manifests))


@pytest.mark.parametrize(("mutate", "check", "path", "words"), [
    (lambda c: c["env"].append({"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}),
     "imagekit", "spec.template.spec.containers[0].env[", "plain text"),
    (lambda c: c["envFrom"][0].update(configMapRef={"name": "other"}),
     "kubernetes-api", "spec.template.spec.containers[0].envFrom[0]", "exactly one"),
    (lambda c: c["envFrom"][0]["secretRef"].update(name="Not_A_Name"),
     "kubernetes-api", "spec.template.spec.containers[0].envFrom[0].secretRef.name", "DNS subdomain"),
    (lambda c: c["envFrom"][0].update(prefix="1X"),
     "kubernetes-api", "spec.template.spec.containers[0].envFrom[0].prefix", "variable name"),
], ids=["credential-in-plain-env", "two-sources", "bad-secret-name", "bad-prefix"])
def test_validation_refuses_credentials_in_the_manifest_and_bad_env_from(mutate, check, path, words):
    problems = validate_rendering(_broken(mutate)).problems
    assert any(p.check.startswith(check) and p.path.startswith(path) and words in p.message for p in problems), problems


def test_a_secret_key_reference_is_accepted():
    """Credentials named one by one from a Secret (secretKeyRef) are fine too: no value in the manifest."""
    def mutate(pipeline: dict) -> None:
        pipeline["env"].append({"name": "AWS_SECRET_ACCESS_KEY",
                                "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}})
    assert validate_rendering(_broken(mutate)).problems == []


def test_rendering_an_s3_pipeline_without_a_secret_says_where_credentials_must_come_from():
    s3_sum = REPO / "tests" / "data" / "pipelines" / "s3-sum"
    quiet = runner.invoke(app, ["deploy", "render", str(s3_sum), "--image", IMAGE, "--s3-secret", "s3"])
    noted = runner.invoke(app, ["deploy", "render", str(s3_sum), "--image", IMAGE])
    assert quiet.exit_code == noted.exit_code == 0, quiet.stderr + noted.stderr
    assert "--s3-secret" not in quiet.stderr and "no --s3-secret" in noted.stderr
    plain = runner.invoke(app, ["deploy", "render", str(WORDFREQ), "--image", IMAGE])
    assert "--s3-secret" not in plain.stderr


def test_wordfreq_s3_variant_shares_the_steps_and_renders_with_the_secret():
    """pipelines/wordfreq/pipeline-s3.yaml: wordfreq's steps but generate, its corpus a source, counts and report sunk."""
    plain, variant = load_pipeline(WORDFREQ), load_pipeline(WORDFREQ / "pipeline-s3.yaml")
    assert variant.uses_s3 and not plain.uses_s3
    assert [s.name for s in variant.packaged_steps] == [s.name for s in plain.packaged_steps if s.name != "generate"]
    assert all(s.directory == plain.steps[[p.name for p in plain.steps].index(s.name)].directory
               for s in variant.packaged_steps)
    assert [source.name for source in variant.sources] == ["corpus"]
    assert sorted(sink.name for sink in variant.sinks) == ["counts", "report"]
    rendering = render(variant, resolve_settings(variant, RenderFlags(image=IMAGE, s3_secret="wordfreq-s3",
                                                                env=[f"AWS_ENDPOINT_URL={ENDPOINT}"])))
    assert validate_rendering(rendering).problems == []


def test_run_names_the_job_in_every_pod_and_render_notes_its_absence_when_a_url_uses_it(tmp_path):
    """--run sets IMAGEKIT_RUN, what {run} in source and sink URLs stands for, the same in every pod."""
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text((REPO / "tests" / "data" / "pipelines" / "s3-sum" / "pipeline.yaml").read_text()
                        .replace("totals/shard-{shard}.txt", "{run}/totals/shard-{shard}.txt"))
    shutil.copytree(REPO / "tests" / "data" / "pipelines" / "s3-sum" / "steps", tmp_path / "steps")
    named = runner.invoke(app, ["deploy", "render", str(pipeline), "--image", IMAGE, "--s3-secret", "s3",
                                "--run", "nightly-2026-11-30", "-o", "json"])
    unnamed = runner.invoke(app, ["deploy", "render", str(pipeline), "--image", IMAGE, "--s3-secret", "s3"])
    assert named.exit_code == unnamed.exit_code == 0, named.stderr + unnamed.stderr
    assert "--run" not in named.stderr and "no --run" in unnamed.stderr
    template = next(m for m in json.loads(named.stdout)["items"] if m["kind"] == "StatefulSet")["spec"]["template"]
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env[contract.RUN_NAME] == "nightly-2026-11-30"
    plain = runner.invoke(app, ["deploy", "render", str(REPO / "tests" / "data" / "pipelines" / "s3-sum"),
                                "--image", IMAGE, "--s3-secret", "s3"])
    assert "--run" not in plain.stderr  # its URLs do not name {run}
