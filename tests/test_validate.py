"""`imagekit validate`: bad pipelines are refused before anything runs, with one line naming file, field and fix."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import EXAMPLES, imagekit, write_pipeline, write_step


def good_pipeline(root: Path) -> Path:
    write_step(root / "steps", "make", "echo hi > $IMAGEKIT_OUT_A\n", outputs=["a"])
    write_step(root / "steps", "use", "cat $IMAGEKIT_IN_A > $IMAGEKIT_OUT_B\n", inputs=["a"], outputs=["b"])
    return write_pipeline(root, "good", ["make", "use"], results=["b"])


def edit_yaml(path: Path, **changes) -> None:
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def assert_refused(result, file_part: str, field: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert file_part in lines[0] and field in lines[0] and "fix:" in lines[0], lines[0]


def test_example_pipelines_are_valid():
    for pipeline in sorted(EXAMPLES.glob("*/pipeline.yaml")):
        result = imagekit("validate", pipeline, "--output", "json")
        assert result.returncode == 0, result.stderr
        assert result.summary["pipeline"] == pipeline.parent.name


def test_good_pipeline_reports_order(tmp_path):
    result = imagekit("validate", good_pipeline(tmp_path), "--output", "json")
    assert result.returncode == 0, result.stderr
    assert result.summary["order"] == ["make", "use"]


@pytest.mark.parametrize("change, field", [
    ({"colour": "blue"}, "colour"),
    ({"shm": "lots"}, "shm"),
    ({"shm": "-1Gi"}, "shm"),
    ({"parallelism": 0}, "parallelism"),
    ({"name": "Bad_Name"}, "name"),
    ({"results": ["nope"]}, "results[0]"),
    ({"steps": ["steps/make", "steps/missing"]}, "steps[1]"),
    ({"checkpoint": {"ssd": "relative/path"}}, "checkpoint.ssd"),
    ({"checkpoint": {"major": ["ghost"]}}, "checkpoint.major[0]"),
    ({"checkpoint": {"flush": True}}, "checkpoint.flush"),
])
def test_bad_pipeline_field(tmp_path, change, field):
    pipeline = good_pipeline(tmp_path)
    edit_yaml(pipeline, **change)
    assert_refused(imagekit("validate", pipeline), "pipeline.yaml", field)


@pytest.mark.parametrize("change, field", [
    ({"command": None}, "command"),
    ({"name": "Use Me"}, "name"),
    ({"retries": -1}, "retries"),
    ({"inputs": ["a", "a"]}, "inputs"),
    ({"requirements": "missing.txt"}, "requirements"),
    ({"unexpected": 1}, "unexpected"),
    ({"inputs": ["never-made"]}, "inputs"),
    ({"outputs": ["a"]}, "outputs"),  # `a` is already produced by `make`
])
def test_bad_step_field(tmp_path, change, field):
    pipeline = good_pipeline(tmp_path)
    edit_yaml(tmp_path / "steps" / "use" / "step.yaml", **change)
    assert_refused(imagekit("validate", pipeline), "step.yaml", field)


def test_cycle_is_refused(tmp_path):
    write_step(tmp_path / "steps", "one", "true\n", inputs=["b"], outputs=["a"])
    write_step(tmp_path / "steps", "two", "true\n", inputs=["a"], outputs=["b"])
    pipeline = write_pipeline(tmp_path, "loop", ["one", "two"])
    result = imagekit("validate", pipeline)
    assert_refused(result, "pipeline.yaml", "steps")
    assert "cycle" in result.stderr and "one" in result.stderr and "two" in result.stderr


def test_duplicate_step_names_are_refused(tmp_path):
    write_step(tmp_path / "steps", "one", "true\n", outputs=["a"])
    (tmp_path / "steps" / "copy").mkdir()
    (tmp_path / "steps" / "copy" / "step.yaml").write_text("name: one\ncommand: [\"true\"]\n")
    pipeline = write_pipeline(tmp_path, "dups", ["one", "copy"])
    assert_refused(imagekit("validate", pipeline), "pipeline.yaml", "steps[1]")


def test_invalid_yaml_names_the_line(tmp_path):
    pipeline = good_pipeline(tmp_path)
    pipeline.write_text("name: good\nsteps: [steps/make\n")
    result = imagekit("validate", pipeline)
    assert_refused(result, "pipeline.yaml", "line")


def test_missing_pipeline_file(tmp_path):
    assert_refused(imagekit("validate", tmp_path / "nowhere.yaml"), "nowhere.yaml", "-")


def test_run_refuses_bad_input_before_running_anything(tmp_path, locations):
    pipeline = good_pipeline(tmp_path)
    edit_yaml(pipeline, shm="a lot")
    result = imagekit("run", pipeline, *locations.args())
    assert_refused(result, "pipeline.yaml", "shm")
    assert not locations.data_root("good").exists()
