"""The CLI's own logic, in process: the dataflow graph, the `init` scaffold, build tags, labels and reference
lines, the progress display, and what the top-level command accepts (--version, -v after the verb, help)."""
from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.core import TyperGroup

from imagekit.build.builder import BuildResult, LayerReport
from imagekit.build.events import Stage
from imagekit.cli import graph, init
from imagekit.cli.build import image_tags, metadata, parse_labels, reference_lines
from imagekit.cli.main import VERB_MODULES, main, make_app, verb_of
from imagekit.cli.progress import ConsoleProgress
from imagekit.publish.publisher import Published
from imagekit_core import contract
from imagekit_core.errors import UsageError
from imagekit_core.spec import load_pipeline

REPO = Path(__file__).resolve().parents[2]
WORDFREQ = REPO / "pipelines" / "wordfreq"
IMAGE_ID = "sha256:" + "ab" * 32
DIGEST = "sha256:" + "cd" * 32


# --- graph -----------------------------------------------------------------------------------------

def test_graph_edges_carry_the_data_names_and_results_are_marked() -> None:
    spec = load_pipeline(WORDFREQ)
    edges = {(e.source, e.target, e.data) for e in graph.edges_of(spec)}
    assert ("generate", "tokenize", "corpus") in edges and ("generate", "linestats", "corpus") in edges
    assert ("tokenize", "count", "vocab") in edges and ("linestats", "report", "linestats") in edges
    assert {(e.source, e.data) for e in graph.edges_of(spec) if e.target is None} == {("count", "counts"), ("report", "report")}


def test_graph_formats() -> None:
    spec = load_pipeline(WORDFREQ)
    mermaid = graph.to_mermaid(spec)
    assert mermaid.startswith("flowchart LR\n")
    assert '  s0 -->|corpus| s1' in mermaid and '  s2 ==>|counts| r0' in mermaid
    assert 'r0[("counts")]:::result' in mermaid and "classDef result" in mermaid
    dot = graph.to_dot(spec)
    assert '"generate" -> "tokenize" [label="corpus"];' in dot and 'shape=cylinder' in dot and dot.rstrip().endswith("}")
    text = graph.to_text(spec)
    assert "  count     --counts--> [result]" in text.splitlines()
    assert '"to": "count"' in graph.to_json(spec)


def test_graph_verb_prints_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(WORDFREQ), "--format", "mermaid"]) == 0
    out, _ = capsys.readouterr()
    assert out == graph.to_mermaid(load_pipeline(WORDFREQ))


# --- init ------------------------------------------------------------------------------------------

def test_init_scaffolds_a_pipeline_that_validates(tmp_path: Path) -> None:
    spec = load_pipeline(init.scaffold(tmp_path / "My Pipeline", ["make", "shout", "count-lines"]))
    assert spec.name == "my-pipeline"
    assert [s.name for s in spec.steps] == ["make", "shout", "count-lines"]
    assert spec.steps[0].command == ("python3", "main.py") and spec.steps[1].command == ("sh", "run.sh")
    assert spec.steps[2].inputs == ("shout-out",) and spec.results == ("count-lines-out",)
    python = (spec.steps[0].directory / "main.py").read_text()
    assert "from imagekit_runtime import step" in python and 'step.open_output("make-out"' in python
    shell = (spec.steps[1].directory / "run.sh").read_text()
    assert f'"${contract.input_var("make-out")}"' in shell and f'"${contract.output_var("shout-out")}"' in shell
    assert "imagekit run" in (tmp_path / "My Pipeline" / "README.md").read_text()


@pytest.mark.parametrize("names", [["Bad_Name"], ["a", "a"], ["x-"]])
def test_init_refuses_bad_step_names(tmp_path: Path, names: list[str]) -> None:
    with pytest.raises(UsageError, match="--step"):
        init.scaffold(tmp_path / "p", names)
    assert not (tmp_path / "p").exists()


def test_init_refuses_a_directory_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty directory"):
        init.scaffold(tmp_path, list(init.DEFAULT_STEPS))
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


# --- build tags, labels, reference lines -------------------------------------------------------------

def test_without_tag_the_repository_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = tmp_path / "wordfreq"
    shutil.copytree(WORDFREQ, pipeline)
    spec = load_pipeline(pipeline)
    monkeypatch.setenv(contract.REPO, "127.0.0.1:5000/team/")
    [tag] = image_tags(spec, [], None, push=True)
    assert re.fullmatch(r"127\.0\.0\.1:5000/team/wordfreq:[0-9a-f]{12}", tag)
    assert image_tags(spec, [], None, push=True) == [tag]  # the content key is stable
    assert image_tags(spec, [], "other/base:1", push=True) != [tag]  # and follows the base
    (pipeline / "steps" / "count" / "main.py").write_text("# changed\n")
    assert image_tags(load_pipeline(pipeline), [], None, push=True) != [tag]  # and every step's files
    monkeypatch.delenv(contract.REPO)
    with pytest.raises(UsageError, match=f"no --tag and {contract.REPO} is not set"):
        image_tags(spec, [], None, push=False)


def test_every_tag_is_checked_and_kept_once_in_order() -> None:
    spec = load_pipeline(WORDFREQ)
    assert image_tags(spec, ["r:5000/a:1", "r:5000/b:2", "r:5000/a:1"], None, push=True) == ["r:5000/a:1", "r:5000/b:2"]
    with pytest.raises(UsageError, match="--tag"):
        image_tags(spec, ["r:5000/a:1", "Not A Tag"], None, push=False)


def test_labels_are_key_equals_value() -> None:
    assert parse_labels(["a=1", "b.c=x=y", "empty="]) == (("a", "1"), ("b.c", "x=y"), ("empty", ""))
    for bad in ("novalue", "=x"):
        with pytest.raises(UsageError, match="KEY=VALUE"):
            parse_labels([bad])


def built(tag: str) -> BuildResult:
    layer = LayerReport(4, "code-a", "code", ["a"], "sha256:" + "11" * 32, 10, False, None)
    return BuildResult(tag=tag, image_id=IMAGE_ID, backend="docker", base="b", runtime_base="rb", runtime_base_reused=True,
                       python="CPython 3.11", platform="linux/amd64", layers=[layer], shared_steps=[], layer_budget=100, labels={"k": "v"},
                       timings={"total": 1.0})


def test_reference_lines_and_metadata() -> None:
    tags = ["r:5000/a:1", "r:5000/b:2"]
    result = built(tags[0])
    assert reference_lines(tags, []) == tags  # one format: a reference per line, no ID beside it
    local = metadata(result, tags, [])
    assert local["reference"] == "r:5000/a:1" and local["image_id"] == IMAGE_ID and local["pushed"] is False
    assert local["by_tag"] == {tag: tag for tag in tags}
    pushed = [Published(f"{tag}@{DIGEST}", DIGEST, (), 0.1) for tag in tags]
    assert reference_lines(tags, pushed) == [f"r:5000/a:1@{DIGEST}", f"r:5000/b:2@{DIGEST}"]
    described = metadata(result, tags, pushed)
    assert described["containerimage.digest"] == described["digest"] == DIGEST
    assert described["image.name"] == "r:5000/a:1,r:5000/b:2" and described["references"][0] == f"r:5000/a:1@{DIGEST}"
    assert described["reference"] == f"r:5000/a:1@{DIGEST}"  # the first tag's, as `tag` is
    assert described["by_tag"] == {"r:5000/a:1": f"r:5000/a:1@{DIGEST}", "r:5000/b:2": f"r:5000/b:2@{DIGEST}"}
    assert described["layers"][0]["name"] == "code-a" and described["timings"] == {"total": 1.0}


# --- progress --------------------------------------------------------------------------------------

def console(**options: object) -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, width=100, **options), sink  # type: ignore[arg-type]


def test_progress_off_a_terminal_is_one_plain_line_per_event() -> None:
    shown_on, sink = console()
    progress = ConsoleProgress(shown_on)
    assert progress.live is False
    progress.name_layers([("sha256:" + "ab" * 32, "deps-count")])
    with progress.shown():
        progress.stage("deps of count", Stage.RESOLVED)
        progress.stage("deps-count", Stage.WRITTEN, 2048)
        progress.stage("deps-count", Stage.LOADED, 2048)
        for sent in (100, 900, 2000):
            progress.transfer("ab" * 6, sent, 2000)  # Docker names a layer by 12 hex digits
        progress.stage("ab" * 6, Stage.PUSHED)
    assert sink.getvalue().splitlines() == ["deps of count: resolved", "deps-count: written (2.0 KiB)",
                                            "deps-count: loaded (2.0 KiB)", "deps-count: pushing (2.0 KiB)",
                                            "deps-count: pushed (2.0 KiB)"]


def test_progress_is_live_on_a_terminal_and_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    shown_on, sink = console(force_terminal=True)
    progress = ConsoleProgress(shown_on)
    assert progress.live is True
    with progress.shown():
        progress.transfer("layer-a", 512, 1024)
        progress.stage("layer-a", Stage.PUSHED)
    output = sink.getvalue()
    assert "layer-a: pushed" in output
    colours = re.findall(r"\x1b\[([0-9;]*)m", output)
    assert not [codes for codes in colours if re.search(r"(^|;)(3[0-8]|9[0-7])(;|$)", codes)], colours
    monkeypatch.delenv("NO_COLOR")
    coloured, coloured_sink = console(force_terminal=True)
    with ConsoleProgress(coloured).shown() as live:
        live.transfer("layer-a", 512, 1024)
    assert re.search(r"\x1b\[[0-9;]*3[0-8][0-9;]*m", coloured_sink.getvalue())  # the check above can fail


# --- the top-level command ---------------------------------------------------------------------------

def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert re.fullmatch(r"imagekit \d+\.\d+\.\d+\n", capsys.readouterr().out)


@pytest.mark.parametrize("args", [["-v", "validate", str(WORDFREQ)], ["validate", str(WORDFREQ), "-v"],
                                  ["validate", "--verbose", str(WORDFREQ)]])
def test_verbose_before_or_after_the_verb(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    import logging

    assert main(args) == 0
    assert logging.getLogger().level == logging.DEBUG
    assert "ok — 5 steps" in capsys.readouterr().out  # the verdict is a result: stdout
    main(["validate", str(WORDFREQ)])
    assert logging.getLogger().level == logging.INFO


@pytest.mark.parametrize("verb", [["run"], ["build"], ["deploy", "render"], ["pod", "status"]])
def test_help_shows_defaults_and_plain_boolean_flags(capsys: pytest.CaptureFixture[str], verb: list[str]) -> None:
    assert main([*verb, "--help"]) == 0
    out = capsys.readouterr().out
    assert "[default: " in out and "--no-no-" not in out
    assert not re.search(r"--(force|dry-run|push|no-cache|wait|delete-data)\s*/\s*--no-", out), out
    assert "-v, --verbose" in out



def test_each_verb_is_registered_by_the_module_named_for_it_and_a_command_line_loads_only_its_own() -> None:
    every = typer.main.get_command(make_app())
    assert isinstance(every, TyperGroup) and set(every.commands) == set(VERB_MODULES)
    for verb in VERB_MODULES:  # the module named for a verb registers it (alone, or with its sibling)
        alone = typer.main.get_command(make_app([verb]))
        assert isinstance(alone, TyperGroup) and verb in alone.commands
    assert verb_of(["-v", "build", "pipelines/wordfreq", "--push"]) == "build"
    assert verb_of(["--version"]) is None and verb_of(["bulid"]) is None and verb_of([]) is None
    only_validate = typer.main.get_command(make_app(["validate"]))
    assert isinstance(only_validate, TyperGroup) and set(only_validate.commands) == {"validate"}
