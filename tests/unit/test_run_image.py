"""`run --platform P` for another platform than this machine's: the run's flags and directories handed to the
image's entrypoint in one emulated container; what it refuses before anything starts."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from imagekit.cli.run_image import docker_run_argv, run_in_image
from imagekit_core.errors import UsageError
from imagekit_core.platforms import Platform
from imagekit_core.spec import PipelineSpec
from imagekit_runtime.run.flags import RUN, RunFlags, add_to_parser
from imagekit_runtime.run.settings import resolve_options

from .graphs import load_graph

ARM64 = Platform("linux", "arm64")


def spec_in(tmp_path: Path) -> PipelineSpec:
    return load_graph(tmp_path / "pipeline", {"a": ([], ["x"])}, shm="256Mi", shards=4, params={"SIZE": "1Ki"})


def test_the_run_goes_into_the_image_with_its_directories_where_they_are_here(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    flags = RunFlags(results=str(tmp_path / "results"), ssd=str(tmp_path / "ssd"), pv=str(tmp_path / "pv"),
                     shard_index=3, param=["SIZE=2Ki"], force=True, parallelism=2, output="json")
    argv = docker_run_argv(spec, resolve_options(spec, flags), "reg:5000/p:t-arm64", ARM64)
    image_at = argv.index("reg:5000/p:t-arm64")
    docker, entrypoint = argv[:image_at], argv[image_at + 1:]
    assert docker[:5] == ["docker", "run", "--rm", "--platform", "linux/arm64"]
    assert docker[docker.index("--shm-size") + 1] == str(256 << 20)
    assert docker[docker.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    mounted = [docker[i + 1] for i, arg in enumerate(docker) if arg == "--volume"]
    assert mounted == [f"{tmp_path / name}:{tmp_path / name}" for name in ("results", "ssd", "pv")]
    # The image's entrypoint parses them with the same flag table a run here does.
    parser = argparse.ArgumentParser()
    add_to_parser(parser, RUN)
    given = parser.parse_args(entrypoint)
    assert (given.results, given.ssd, given.pv) == tuple(str(tmp_path / name) for name in ("results", "ssd", "pv"))
    assert (given.shard_index, given.shard_count, given.param) == (3, 4, ["SIZE=2Ki"])
    assert (given.force, given.parallelism, given.output, given.no_checkpoints) == (True, 2, "json", False)


def test_a_run_without_checkpoints_says_so_and_mounts_only_its_results(tmp_path: Path) -> None:
    spec = spec_in(tmp_path)
    flags = RunFlags(results=str(tmp_path / "results"), no_checkpoints=True)
    argv = docker_run_argv(spec, resolve_options(spec, flags), "p:t", ARM64)
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--volume"] == [
        f"{tmp_path / 'results'}:{tmp_path / 'results'}"]
    assert "--no-checkpoints" in argv and "--ssd" not in argv and "--pv" not in argv


@pytest.mark.parametrize(("flags", "image", "says"), [
    (RunFlags(), None, r"no --image names it \(fix: --image REF"),
    (RunFlags(metrics=":9100"), "p:t", "--metrics with --platform linux/arm64: .*not published"),
])
def test_what_cannot_run_in_the_image_is_refused_first(tmp_path: Path, flags: RunFlags, image: str | None,
                                                        says: str) -> None:
    with pytest.raises(UsageError, match=says):
        run_in_image(spec_in(tmp_path), flags, ARM64, image)
