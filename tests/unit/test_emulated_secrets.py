"""The emulator's Secrets and network (in-process): a rendered envFrom secretRef becomes the pipeline container's
variables from `pod up --secret NAME=FILE` or the host's AWS_* variables; env wins over envFrom; nothing of a
value reaches the set's state."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagekit_core.errors import UsageError
from imagekit_core.spec import load_pipeline
from imagekit_deploy.emulator.apply import PodOptions, _check_options
from imagekit_deploy.emulator.blueprint import set_blueprint
from imagekit_deploy.emulator.pods import PodSet
from imagekit_deploy.emulator.secrets import HOST, parse_secret_flags, secret_values
from imagekit_deploy.emulator.state import SetState, StateDir
from imagekit_deploy.flags import RenderFlags
from imagekit_deploy.renderer import render
from imagekit_deploy.settings import resolve_settings

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "tests" / "data" / "pipelines" / "deploy-single"
ENDPOINT = "http://172.30.0.1:9000"


def rendered_set(**options):
    spec = load_pipeline(PIPELINE)
    settings = resolve_settings(spec, RenderFlags(image="example.com/p:1", **options))
    return set_blueprint(render(spec, settings))


def env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3.env"
    path.write_text(text)
    return path


def test_the_blueprint_names_the_secrets_of_env_from_and_keeps_plain_env():
    blueprint = rendered_set(s3_secret="store", env=(f"AWS_ENDPOINT_URL={ENDPOINT}",)).pod(0)
    assert blueprint.container.secrets == ("store",)
    assert blueprint.container.env["AWS_ENDPOINT_URL"] == ENDPOINT
    assert all(init.secrets == () for init in blueprint.init_containers)
    assert rendered_set().pod(0).container.secrets == ()


def test_a_config_map_or_prefix_is_refused_in_one_line():
    blueprint = rendered_set(s3_secret="store")
    container = blueprint.workload["spec"]["template"]["spec"]["containers"][0]
    container["envFrom"] = [{"configMapRef": {"name": "c"}}]
    with pytest.raises(UsageError, match="not emulated"):
        blueprint.pod(0)


def test_secret_from_an_env_file_and_from_the_host(tmp_path, monkeypatch):
    path = env_file(tmp_path, "# moto\nAWS_ACCESS_KEY_ID=testing\n\nAWS_SECRET_ACCESS_KEY=a=b\n")
    sources = parse_secret_flags([f"file-secret={path}", "host-secret"])
    assert sources == {"file-secret": str(path.resolve()), "host-secret": HOST}
    assert secret_values(("file-secret",), sources, "p-0") == {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "a=b"}
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "host-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-key")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("HOME_SECRET_NOT_TAKEN", "x")
    assert secret_values(("host-secret",), sources, "p-0") == {"AWS_ACCESS_KEY_ID": "host-id",
                                                              "AWS_SECRET_ACCESS_KEY": "host-key"}


@pytest.mark.parametrize(("flags", "names", "words"), [
    (["store"], ("other",), "--secret other"),
    (["Bad_Name"], (), "not a Secret name"),
    (["store=/no/such/file"], (), "no such file"),
])
def test_missing_or_bad_secrets_are_refused(flags, names, words):
    with pytest.raises(UsageError, match=words):
        secret_values(names, parse_secret_flags(flags), "p-0")


def test_a_bad_env_file_line_is_refused_without_showing_it(tmp_path):
    path = env_file(tmp_path, "AWS_SECRET_ACCESS_KEY hunter2\n")
    with pytest.raises(UsageError) as refused:
        secret_values(("s",), parse_secret_flags([f"s={path}"]), "p-0")
    assert "line 1" in str(refused.value) and "hunter2" not in str(refused.value)


def test_host_secret_without_credentials_is_refused(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(UsageError, match="export them"):
        secret_values(("s",), {"s": HOST}, "p-0")


def test_container_env_has_the_secret_under_its_own_env_and_the_state_no_value(tmp_path):
    blueprint = rendered_set(s3_secret="store", env=(f"AWS_ENDPOINT_URL={ENDPOINT}",))
    path = env_file(tmp_path, "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY=hunter2\nAWS_ENDPOINT_URL=http://wrong\n")
    state = SetState(rendered="r", name=blueprint.name, namespace="default", workload=blueprint.workload, ordinals=[0],
                     network="imagekit-test-net", secrets=parse_secret_flags([f"store={path}"]))
    state_dir = StateDir(tmp_path / "state")
    pods = PodSet(state_dir, engine=None)  # type: ignore[arg-type]  # options only: no engine call
    pod = pods.blueprint(state, 0)
    options = pods._container_options(state, pod, pod.container, "container", "sandbox")
    environment = dict(item.split("=", 1) for item in options["environment"])
    assert environment["AWS_SECRET_ACCESS_KEY"] == "hunter2"
    assert environment["AWS_ENDPOINT_URL"] == ENDPOINT  # env wins over envFrom, as on a kubelet
    state_dir.save(state)
    saved = state_dir.file.read_text()
    assert "hunter2" not in saved and json.loads(saved)["network"] == "imagekit-test-net"
    assert state_dir.load().secrets == {"store": str(path.resolve())}


def test_network_and_secrets_are_kept_or_must_match_the_running_set(tmp_path):
    blueprint = rendered_set()
    previous = SetState(rendered="r", name=blueprint.name, namespace="default", workload={}, ordinals=[0],
                        network="net-a", secrets={"s": HOST})
    where = StateDir(tmp_path)
    kept = _check_options(where, previous, blueprint, PodOptions())
    assert (kept.network, kept.secrets, kept.params) == ("net-a", {"s": HOST}, {})
    with pytest.raises(UsageError, match="--network"):
        _check_options(where, previous, blueprint, PodOptions(network="net-b"))
    with pytest.raises(UsageError, match="--secret"):
        _check_options(where, previous, blueprint, PodOptions(secrets={"t": HOST}))
    assert _check_options(where, None, blueprint, PodOptions(network="n")).network == "n"
