"""Settings `imagekit deploy render` refuses: one line naming the file, field and fix, exit 2, and nothing
written (the manifests' own checks are in test_deploy_validation.py)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagekit.cli.main import make_app

app = make_app(["deploy"])  # the command CliRunner invokes

REPO = Path(__file__).resolve().parents[1]
WORDFREQ = REPO / "pipelines" / "wordfreq"
IMAGE = "registry.example.com/imagekit/wordfreq:1.0"

runner = CliRunner()


def write_pipeline(root: Path, *, shm: str = "256Mi", checkpoint: str = "", results: str = "[out]") -> Path:
    step = root / "steps" / "make"
    step.mkdir(parents=True)
    (step / "step.yaml").write_text("name: make\ncommand: [sh, -c, 'echo hi > $IMAGEKIT_OUT_OUT']\noutputs: [out]\n")
    (root / "pipeline.yaml").write_text(textwrap.dedent(f"""\
        name: refused
        steps: [steps/make]
        shm: {shm}
        results: {results}
        """) + checkpoint)
    return root


def render_cli(pipeline: Path, *args: str):
    return runner.invoke(app, ["deploy", "render", str(pipeline), "--image", IMAGE, *args])


REFUSED = [
    ("shm-above-memory-limit", {"shm": "4Gi"}, ["--memory-limit", "2Gi"], "does not fit in --memory-limit"),
    ("shm-equal-memory-limit", {"shm": "2Gi"}, ["--memory-limit", "2Gi"], "does not fit in --memory-limit"),
    ("no-room-beside-shm", {"shm": "1Gi"}, ["--memory-limit", "1050Mi"], "for the step processes"),
    ("checkpoint-in-shm", {"checkpoint": "checkpoint:\n  ssd: /dev/shm/checkpoints\n"}, [], "checkpoint.ssd"),
    ("checkpoint-in-tmp", {"checkpoint": "checkpoint:\n  pv: /tmp/pv\n"}, [], "checkpoint.pv"),
    ("checkpoint-in-image", {"checkpoint": "checkpoint:\n  ssd: /opt/imagekit/ssd\n"}, [], "/opt/imagekit"),
    ("checkpoint-at-root", {"checkpoint": "checkpoint:\n  pv: /\n"}, [], "root directory"),
    ("checkpoints-overlap", {"checkpoint": "checkpoint:\n  ssd: /data\n  pv: /data/pv\n"}, [], "overlap"),
    ("major-without-pv", {"checkpoint": "checkpoint:\n  pv: null\n  major: [out]\n", "results": "[]"}, [], "checkpoint.major"),
    ("results-without-pv", {"checkpoint": "checkpoint:\n  pv: null\n"}, [], "results"),
    ("ssd-disabled-but-asked-for", {"checkpoint": "checkpoint:\n  ssd: null\n"}, ["--ssd", "local-pv"], "--ssd local-pv"),
    ("zero-replicas", {}, ["--replicas", "0"], "--replicas 0"),
    ("negative-replicas", {}, ["--replicas", "-3"], "--replicas -3"),
    ("skip-shard-on-plain-statefulset", {}, ["--flavor", "statefulset", "--skip-shard", "0"], "--flavor kruise"),
    ("skip-shard-out-of-range", {}, ["--replicas", "2", "--skip-shard", "2"], "--skip-shard 2"),
    ("skip-every-shard", {}, ["--replicas", "1", "--skip-shard", "0"], "no pod"),
    ("bad-namespace", {}, ["--namespace", "Batch_Jobs"], "--namespace"),
    ("bad-memory-limit", {}, ["--memory-limit", "lots"], "--memory-limit"),
    ("bad-max-unavailable", {}, ["--max-unavailable", "0"], "--max-unavailable"),
    ("bad-image", {}, ["--image", "has space:1"], "--image"),
    ("name-too-long", {}, ["--name", "n" * 53], "at most 52"),
]


@pytest.mark.parametrize(("pipeline_options", "args", "words"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_invalid_deploy_settings_are_refused_with_one_line_and_exit_2(tmp_path, pipeline_options, args, words):
    pipeline = write_pipeline(tmp_path / "pipeline", **pipeline_options)
    result = render_cli(pipeline, *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert words in lines[0]
    assert "fix:" in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


def test_refused_render_writes_nothing(tmp_path):
    pipeline = write_pipeline(tmp_path / "pipeline", shm="4Gi")
    result = render_cli(pipeline, "--memory-limit", "1Gi", "-d", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_missing_pipeline_is_exit_2(tmp_path):
    result = render_cli(tmp_path / "absent")
    assert result.exit_code == 2
    assert "not found" in result.stderr


def test_render_refuses_to_overwrite_a_foreign_kustomization(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources: [mine.yaml]\n")
    result = render_cli(WORDFREQ, "-d", str(tmp_path))
    assert result.exit_code == 2
    assert "not written by imagekit" in result.stderr
    assert (tmp_path / "kustomization.yaml").read_text() == "resources: [mine.yaml]\n"
