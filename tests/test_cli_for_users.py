"""What a user of the installed command relies on, without an engine: -h, a reader that stops early, every
validation problem at once, a misspelt --param, per-user host defaults, steps that see only their own
environment, and fix hints that name things a pip user has."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, imagekit, imagekit_argv, write_pipeline, write_step
from imagekit_core import contract
from imagekit_runtime.locations import IMAGE_LOCATIONS, checkpoint_dir, host_locations, in_image

MAKE = "from imagekit_runtime import step\nstep.output_path('x').write_text('1')\n"


def test_dash_h_is_help_for_the_command_and_its_verbs() -> None:
    for args in (("-h",), ("build", "-h"), ("deploy", "render", "-h")):
        result = imagekit(*args)
        assert result.returncode == 0, result.stderr
        assert "Usage: imagekit" in result.stdout


def test_a_reader_that_stops_early_is_not_a_failure() -> None:
    """`imagekit … | head -1` under pipefail: exit 0 and nothing on stderr (as git and kubectl)."""
    script = f"set -o pipefail; {' '.join(map(str, imagekit_argv('graph', REPO / 'pipelines/wordfreq', '-o', 'json')))} | head -c1"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "{" and "error" not in result.stderr


def test_validate_lists_every_problem_one_line_each(tmp_path: Path) -> None:
    pipeline = tmp_path / "bad"
    (pipeline / "steps" / "a").mkdir(parents=True)
    (pipeline / "steps" / "b").mkdir(parents=True)
    (pipeline / "pipeline.yaml").write_text("name: Bad_Name\nsteps: [steps/a, steps/b]\nshm: lots\nshards: -1\n")
    (pipeline / "steps" / "a" / "step.yaml").write_text("name: a\ncommand: [python3, x.py]\nretries: many\nkind: gpu\n")
    (pipeline / "steps" / "b" / "step.yaml").write_text("name: b\nbogus: 1\n")
    result = imagekit("validate", pipeline)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("error: ") and "(fix: " in line for line in lines), lines
    named = {(re.sub(r", line \d+", "", line.split(": ")[1]), line.split(": ")[2]) for line in lines}
    assert named == {(str(pipeline / "pipeline.yaml"), "name"), (str(pipeline / "pipeline.yaml"), "shm"),
                     (str(pipeline / "pipeline.yaml"), "shards"), (str(pipeline / "steps/a/step.yaml"), "retries"),
                     (str(pipeline / "steps/a/step.yaml"), "kind"), (str(pipeline / "steps/b/step.yaml"), "bogus"),
                     (str(pipeline / "steps/b/step.yaml"), "command")}
    assert "Traceback" not in result.stderr
    # Another verb names the first problem and says how many more there are.
    other = imagekit("graph", pipeline)
    assert other.returncode == 2 and "and 6 more: `imagekit validate` lists every one" in other.stderr


def test_an_unknown_param_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    write_step(tmp_path / "steps", "make", MAKE, outputs=["x"], shell=False)
    pipeline = write_pipeline(tmp_path, "params", ["make"], params={"WORDS": "3"})
    result = imagekit("run", pipeline, "--param", "WORD=4", "--no-checkpoints", "--results", tmp_path / "out")
    assert result.returncode == 2
    assert "--param WORD:" in result.stderr and "did you mean WORDS?" in result.stderr
    assert not (tmp_path / "out").exists()


def test_host_defaults_are_per_user_and_the_image_keeps_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    host = host_locations()
    assert host.shm_base == Path(f"/dev/shm/imagekit-{os.getuid()}")
    assert host.ssd == tmp_path / "state" / "imagekit" / "ssd" and host.pv == tmp_path / "state" / "imagekit" / "pv"
    assert not in_image()  # this checkout's runtime is not the image's
    assert in_image(Path(contract.IMAGE_RUNTIME_DIR) / "imagekit_runtime")
    # A pipeline that left the image's defaults gets the host's; one that named its own keeps them.
    assert checkpoint_dir(IMAGE_LOCATIONS.ssd, IMAGE_LOCATIONS.ssd, host.ssd) == host.ssd
    assert checkpoint_dir(Path("/mnt/ssd"), IMAGE_LOCATIONS.ssd, host.ssd) == Path("/mnt/ssd")
    assert checkpoint_dir(None, IMAGE_LOCATIONS.ssd, host.ssd) is None


def test_a_host_run_with_default_paths_writes_only_per_user_places(tmp_path: Path) -> None:
    write_step(tmp_path / "p" / "steps", "make", MAKE, outputs=["x"], shell=False)
    pipeline = write_pipeline(tmp_path / "p", "defaults", ["make"], results=["x"])
    state = tmp_path / "state"
    result = imagekit("run", pipeline, env={"XDG_STATE_HOME": str(state), contract.SHM_DIR: None,
                                            contract.SSD_DIR: None, contract.PV_DIR: None})
    assert result.returncode == 0, result.stderr
    assert (state / "imagekit" / "pv" / "results" / "0").is_dir()
    assert (state / "imagekit" / "ssd").is_dir()


def test_steps_see_their_own_environment_not_imagekits(tmp_path: Path) -> None:
    """A step without requirements cannot import what imagekit itself runs on (typer); the step helper still
    imports; nothing of imagekit's site-packages is on the step's path."""
    code = ("import importlib.util, json, os, sys\n"
            "from imagekit_runtime import step\n"
            "found = importlib.util.find_spec('typer') is not None\n"
            "step.output_path('x').write_text(json.dumps({'typer': found, 'path': os.environ['PYTHONPATH'], "
            "'exe': sys.executable}))\n")
    write_step(tmp_path / "steps", "look", code, outputs=["x"], shell=False)
    pipeline = write_pipeline(tmp_path, "look", ["look"], results=["x"])
    result = imagekit("run", pipeline, "--no-checkpoints", "--results", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    seen = json.loads((tmp_path / "out" / "x").read_text())
    assert seen["typer"] is False
    import typer
    site = str(Path(typer.__file__ or "").resolve().parents[1])
    assert site not in seen["path"].split(os.pathsep), seen["path"]
    assert seen["exe"] != sys.executable


def test_no_fix_hint_names_a_script_of_this_repository() -> None:
    for folder in ("imagekit", "runtime", "deploy"):
        for source in (REPO / folder).rglob("*.py"):
            named = re.findall(r"scripts/[a-z_-]+\.sh", source.read_text())
            assert not named, f"{source} names {named}: a script a pip user does not have"


@pytest.mark.slow  # installs urllib3 into the step's venv (seconds, from the package index)
def test_a_step_pinning_a_package_imagekit_also_uses_gets_its_own_pin(tmp_path: Path) -> None:
    """imagekit's own environment has urllib3 2.x (docker, requests): a step pinning 1.26.18 imports 1.26.18."""
    code = ("import urllib3\nfrom imagekit_runtime import step\n"
            "step.output_path('x').write_text(urllib3.__version__)\n")
    write_step(tmp_path / "steps", "pinned", code, outputs=["x"], shell=False, requirements="urllib3==1.26.18\n")
    pipeline = write_pipeline(tmp_path, "pinned", ["pinned"], results=["x"])
    result = imagekit("run", pipeline, "--no-checkpoints", "--results", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "x").read_text() == "1.26.18"


def test_credentials_in_a_source_url_are_never_printed(tmp_path: Path) -> None:
    """A malformed URL holding credentials: the validation error names the field, never the password."""
    write_step(tmp_path / "steps", "use", MAKE.replace("output_path('x')", "output_path('y')"), inputs=["data"],
               outputs=["y"], shell=False)
    pipeline = write_pipeline(tmp_path, "secret", ["use"],
                              sources={"data": "s3://AKIAEXAMPLE:hunter2-secret@bucket/{shard:>bad}"})
    for verb in ("validate", "graph"):
        result = imagekit(verb, pipeline)
        assert result.returncode == 2, result.stderr
        assert "hunter2-secret" not in result.stderr + result.stdout and "sources" in result.stderr
    rendered = imagekit("deploy", "render", REPO / "pipelines" / "wordfreq", "--image", f"r.example/p@sha256:{'a' * 64}",
                        "--env", "DATABASE_URL=postgres://app:hunter2-secret@db/x")
    assert rendered.returncode == 2 and "hunter2-secret" not in rendered.stderr + rendered.stdout
    assert "--env DATABASE_URL" in rendered.stderr and "Secret" in rendered.stderr
