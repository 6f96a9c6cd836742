"""Run flags are declared once (imagekit_runtime/run/flags.py): the image's entrypoint and `imagekit run|status`
offer the same flags, with the same help, and parse the same argv into the same RunFlags."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from imagekit.cli.flagtable import command_with_flags
from imagekit_core.flagtable import flag_values
from imagekit_runtime.run.flags import FLAGS, RUN, STATUS, RunFlags, add_to_parser, flags_of

ARGV = ["--shm-dir", "/s", "--ssd", "/d", "--pv", "/p", "--results", "/r", "--run-dir", "/x", "--shard-index", "2",
        "--shard-count", "4", "--param", "A=1", "--param", "B=2", "--no-checkpoints", "--force", "--parallelism", "3",
        "--wait-lock", "1.5", "--shm-soft", "--metrics", "9464", "-o", "json"]


def runtime_parse(command: str, argv: list[str]) -> RunFlags:
    parser = argparse.ArgumentParser()
    parser.add_argument("pipeline")
    add_to_parser(parser, command)
    return flag_values(RunFlags, vars(parser.parse_args(["p.yaml", *argv])))


def cli_parse(command: str, argv: list[str]) -> RunFlags:
    seen: list[RunFlags] = []

    def body(pipeline: Path, flags: RunFlags, **_: Any) -> None:
        seen.append(flags)
    app = typer.Typer()
    app.command(command)(command_with_flags(flags_of(command), RunFlags, body))
    app.command("other")(lambda: None)  # two commands: typer then keeps the command's name
    result = CliRunner().invoke(app, [command, "p.yaml", *argv])
    assert result.exit_code == 0, result.output
    return seen[0]


def test_both_parsers_read_the_same_argv_into_the_same_flags() -> None:
    runtime, cli = runtime_parse(RUN, ARGV), cli_parse(RUN, ARGV)
    assert runtime == cli
    assert runtime.param == ["A=1", "B=2"] and runtime.wait_lock == 1.5 and runtime.output == "json"
    assert runtime_parse(RUN, []) == cli_parse(RUN, []) == RunFlags()  # defaults stated once


def test_both_offer_every_flag_of_the_table_and_no_other_run_flag() -> None:
    for command in (RUN, STATUS):
        parser = argparse.ArgumentParser()
        add_to_parser(parser, command)
        runtime = {option for action in parser._actions for option in action.option_strings} - {"-h", "--help"}
        click_command = get_command(_app(command)).commands[command]  # type: ignore[attr-defined]
        cli = {option for parameter in click_command.params for option in parameter.opts if option.startswith("-")}
        table = {flag.option for flag in flags_of(command)} | {flag.short for flag in flags_of(command) if flag.short}
        assert runtime == table
        assert cli == table


def _app(command: str) -> typer.Typer:
    app = typer.Typer()
    app.command(command)(command_with_flags(flags_of(command), RunFlags, lambda pipeline, flags: None))
    app.command("other")(lambda: None)
    return app


def test_status_takes_the_location_flags_run_the_rest() -> None:
    status = {flag.dest for flag in flags_of(STATUS)}
    assert {"shm_dir", "ssd", "pv", "results", "run_dir", "shard_index", "shard_count", "param"} <= status
    assert "force" not in status and "metrics" not in status
    assert {flag.dest for flag in FLAGS} == set(RunFlags.__dataclass_fields__)  # every field is a flag


@pytest.mark.parametrize("argv", [["--shard-index", "x"], ["-o", "yaml"]])
def test_a_bad_value_is_refused_by_both(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        runtime_parse(RUN, argv)
    app = _app(RUN)
    assert CliRunner().invoke(app, [RUN, "p.yaml", *argv]).exit_code == 2


def test_the_render_flags_table_and_its_values_agree() -> None:
    from imagekit_deploy.flags import RENDER_FLAGS, RenderFlags

    assert {flag.dest for flag in RENDER_FLAGS} == set(RenderFlags.__dataclass_fields__)
    seen: list[RenderFlags] = []
    app = typer.Typer()
    app.command("render")(command_with_flags(RENDER_FLAGS, RenderFlags, lambda pipeline, flags: seen.append(flags)))
    app.command("other")(lambda: None)
    argv = ["render", "p.yaml", "--image", "r.example/p:1", "--skip-shard", "1", "--skip-shard", "3", "-e", "A=1",
            "--flavor", "statefulset", "-n", "jobs"]
    assert CliRunner().invoke(app, argv).exit_code == 0
    assert seen == [RenderFlags(image="r.example/p:1", skip_shard=[1, 3], env=["A=1"], flavor="statefulset",
                                namespace="jobs")]
    assert CliRunner().invoke(app, ["render", "p.yaml"]).exit_code == 2  # --image is required


def test_every_render_flag_is_in_the_deploy_docs_table() -> None:
    from imagekit_deploy.flags import RENDER_FLAGS

    table = [line for line in (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text().splitlines()
             if line.startswith("| `--")]
    missing = [flag.option for flag in RENDER_FLAGS if not any(f"`{flag.option}" in row for row in table)]
    assert missing == []
