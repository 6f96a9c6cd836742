"""Above the layer budget the smallest steps share layers; the image still builds, runs, and says which."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import imagekit
from fixtures_engine import BASE_IMAGE, REGISTRY, build_json, run_pipeline_image
from imagekit.build.plan import CONTAINERD_LAYER_LIMIT, plan_layers
from imagekit_core.errors import UsageError
from imagekit_core.spec import load_pipeline


def write_chain(root: Path, steps: int) -> Path:
    """A pipeline of `steps` shell steps in a chain; step i carries i KiB of padding, so sizes differ."""
    names = [f"s{index:03d}" for index in range(steps)]
    for index, name in enumerate(names):
        directory = root / "steps" / name
        directory.mkdir(parents=True)
        inputs = f"[d{index - 1:03d}]" if index else "[]"
        (directory / "step.yaml").write_text(
            f"name: {name}\ncommand: [sh, run.sh]\ninputs: {inputs}\noutputs: [d{index:03d}]\n")
        source = f'cat "$IMAGEKIT_IN_D{index - 1:03d}" > "$IMAGEKIT_OUT_D{index:03d}"; ' if index else ""
        (directory / "run.sh").write_text(f'{source}echo {name} >> "$IMAGEKIT_OUT_D{index:03d}"\n')
        (directory / "padding").write_bytes(b"x" * 1024 * index)
    (root / "pipeline.yaml").write_text(
        "name: chain\nsteps: [" + ", ".join(f"steps/{name}" for name in names) + "]\n"
        f"shm: 64Mi\nresults: [d{steps - 1:03d}]\ncheckpoint: {{ssd: null, pv: null}}\n")
    return root


def test_many_steps_share_layers_within_the_budget(tmp_path: Path) -> None:
    spec = load_pipeline(write_chain(tmp_path / "chain", 150))
    files = tmp_path / "files"
    files.mkdir()
    plan = plan_layers(spec, {}, files, base_layers=4)
    assert plan.total_layers <= 100 < CONTAINERD_LAYER_LIMIT
    shared = set(plan.shared_steps)
    alone = [layer.steps[0] for layer in plan.layers if layer.kind == "code" and layer.name != "code-shared"]
    # The smallest steps share; every step is in exactly one code layer.
    assert shared == {f"s{index:03d}" for index in range(len(shared))}
    shared_layer = plan.layer_of("s000", "code")
    assert shared_layer is not None
    assert sorted(alone + list(shared_layer.steps)) == sorted(s.name for s in spec.steps)
    # The pipeline layer lies under every code layer: a change to a step's code is applied again on top of it only.
    kinds = [layer.kind for layer in plan.layers]
    assert kinds == sorted(kinds, key=["deps", "pipeline", "code"].index) and kinds.count("pipeline") == 1


def test_no_sharing_below_the_budget(tmp_path: Path) -> None:
    spec = load_pipeline(write_chain(tmp_path / "chain", 5))
    files = tmp_path / "files"
    files.mkdir()
    plan = plan_layers(spec, {}, files, base_layers=4)
    assert plan.shared_steps == () and len(plan.layers) == 6


def test_budget_too_small_or_above_containerds_limit_is_bad_input(tmp_path: Path) -> None:
    spec = load_pipeline(write_chain(tmp_path / "chain", 5))
    files = tmp_path / "files"
    files.mkdir()
    with pytest.raises(UsageError):
        plan_layers(spec, {}, files, base_layers=4, budget=5)
    with pytest.raises(UsageError):
        plan_layers(spec, {}, files, base_layers=4, budget=CONTAINERD_LAYER_LIMIT + 1)


@pytest.mark.docker
@pytest.mark.slow  # builds and runs an image of 60 steps
def test_pipeline_over_budget_builds_says_which_steps_share_and_runs(engine_ready: None, build_env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    pipeline = write_chain(tmp_path / "chain", 24)
    tag = f"{REGISTRY}/imagekit-test/chain:latest"
    result = imagekit("build", pipeline, "--tag", tag, "--base", BASE_IMAGE, "--layer-budget", "16",
                          env=build_env)
    assert result.returncode == 0, result.stderr
    assert "share" in result.stderr and "s000" in result.stderr
    report = build_json(imagekit("build", pipeline, "--tag", tag, "--base", BASE_IMAGE, "--layer-budget", "16",
                                     "--output", "json", env=build_env))
    assert len(report["layers"]) == 16
    assert report["shared_steps"] == [f"s{index:03d}" for index in range(len(report["shared_steps"]))]
    assert report["labels"]["dev.imagekit.shared-steps"] == ",".join(report["shared_steps"])

    run = run_pipeline_image(tag, tmp_path / "results", shard_count=1, wordfreq=False)
    assert run.exit_code == 0, run.logs[-3000:]
    assert (run.results / "d023").read_text().split() == [f"s{index:03d}" for index in range(24)]
