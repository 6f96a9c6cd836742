"""Every bad input is refused before any work, in one line naming the file, the field and the fix; no traceback.

The table of malformed pipelines and step packages is checked in-process (load_pipeline raises SpecError
with the right text); flags and manifests go through the CLI's one entry (`main`, in-process, fast).
Registries, bugs and the process boundary are in test_bad_environment.py; the shared pieces in
refusal_support.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import imagekit
from imagekit_core.errors import SpecError
from imagekit_core.spec import load_pipeline
from refusal_support import (
    COMMAND_MISSING,
    MAKE,
    NOT_UTF8,
    PIPELINE,
    USE,
    Bad,
    assert_one_line,
    assert_refused,
    cli,
    good,
    pipeline_with,
    write_case,
)

BAD_PIPELINES: dict[str, Bad] = {
    "step outside the pipeline": Bad(pipeline=PIPELINE.replace("steps/use]", "../outside/c]"), field="steps[1]",
                                     says=("outside the pipeline directory",), line=2,
                                     files={"outside/c/step.yaml": USE}),
    "absolute step path": Bad(pipeline=PIPELINE.replace("steps/use]", "/etc]"), field="steps[1]",
                              says=("absolute",)),
    "step is the pipeline directory": Bad(pipeline=PIPELINE.replace("steps/use]", ".]"), field="steps[1]",
                                          says=("pipeline directory itself",)),
    "step symlinked to outside": Bad(pipeline=PIPELINE.replace("steps/use]", "steps/link]"), field="steps[1]",
                                     says=("outside",), files={"outside/c/step.yaml": USE, "@link": "outside/c"}),
    "step directory missing": Bad(pipeline=PIPELINE.replace("steps/use]", "steps/gone]"), field="steps[1]",
                                  says=("not found",)),
    "step listed twice": Bad(pipeline=PIPELINE.replace("steps/use]", "steps/make]"), field="steps[1]",
                             says=("used by",)),
    "steps empty": Bad(pipeline=PIPELINE.replace("[steps/make, steps/use]", "[]"), field="steps", line=2),
    "steps not a list": Bad(pipeline=PIPELINE.replace("[steps/make, steps/use]", "5"), field="steps"),
    "shm given twice": pipeline_with("shm: 1Gi\n", field="shm", says=("given twice", "line 3"), line=5),
    "nested key given twice": pipeline_with("checkpoint: {ssd: /a, ssd: /b}\n", field="ssd",
                                                                                    says=("given twice",)),
    "typo in a key": pipeline_with("paralellism: 2\n", field="paralellism",
                                                          says=("did you mean `parallelism`",), line=5),
    "typo in a nested key": pipeline_with("checkpoint: {retension: 2}\n", field="checkpoint.retension",
                                                                            says=("checkpoint.retention",)),
    "unknown key far from any": pipeline_with("colour: blue\n", field="colour", says=("allowed keys",)),
    "key that is not a string": pipeline_with("1: x\n", field="1", says=("unknown key",)),
    "nested params": pipeline_with("params: {A: {b: 1}}\n", field="params.A",
                                                               says=("string, number or boolean",)),
    "list param": pipeline_with("params: {A: [1, 2]}\n", field="params.A"),
    # Bounds: what validates must also run (file names, Kubernetes names, memory, time, environment).
    "step name past 63": Bad(make=MAKE.replace("name: make", "name: " + "m" * 64), file="make/step.yaml",
                             field="name", says=("at most 63",)),
    "pipeline name past 52": Bad(pipeline=PIPELINE.replace("name: good", "name: " + "g" * 53), field="name",
                                 says=("at most 52",)),
    "data name past 100": Bad(make=MAKE.replace("outputs: [a]", "outputs: [" + "a" * 101 + "]"), file="make/step.yaml",
                              field="outputs[0]"),
    "shm of exabytes": Bad(pipeline=PIPELINE.replace("64Mi", "100Ei"), field="shm", says=("4Ti",)),
    "grace of 1e300": pipeline_with("grace_seconds: 1e300\n", field="grace_seconds", says=("86400",)),
    "shards of billions": pipeline_with("shards: 3000000000\n", field="shards", says=("from 1 to",)),
    "param named PATH": pipeline_with("params: {PATH: /evil}\n", field="params.PATH", says=("set by imagekit",)),
    "param named LD_PRELOAD": pipeline_with("params: {LD_PRELOAD: /x.so}\n", field="params.LD_PRELOAD"),
    "param named IMAGEKIT_": pipeline_with("params: {IMAGEKIT_SHARD_INDEX: '3'}\n", field="params.IMAGEKIT_SHARD_INDEX"),
    "param with a carriage return": pipeline_with('params: {A: "x\\r\\ncommand=evil"}\n', field="params.A",
                                                 says=("control character",)),
    "step env named PYTHONPATH": Bad(make=MAKE + "env: {PYTHONPATH: /x}\n", file="make/step.yaml",
                                     field="env.PYTHONPATH"),
    "editable requirement": Bad(make=MAKE + "requirements: requirements.txt\n", file="make/requirements.txt",
                                field="requirements", says=("editable install", "wheel"),
                                files={"p/steps/make/requirements.txt": "numpy==2.1.3\n-e ../lib\n"}, line=2),
    "git requirement": Bad(make=MAKE + "requirements: requirements.txt\n", file="make/requirements.txt",
                           field="requirements", says=("a VCS URL",),
                           files={"p/steps/make/requirements.txt": "mylib @ git+https://git.example/lib.git\n"}),
    "local path requirement in an include": Bad(make=MAKE + "requirements: requirements.txt\n", file="make/more.txt",
                                                field="requirements", says=("a local path",),
                                                files={"p/steps/make/requirements.txt": "-r more.txt\n",
                                                       "p/steps/make/more.txt": "./vendor/mylib\n"}),
    "template width in the billions": pipeline_with("sources: {a0: 'file:///d/{shard:>3000000000}'}\n",
                                                     field="sources.a0", says=("more than 64 characters",)),
    "null param": pipeline_with("params: {A: null}\n", field="params.A"),
    "param name not a variable": pipeline_with("params: {1X: a}\n", field="params",
                                                                     says=("not a variable name",)),
    "params a list": pipeline_with("params: [A]\n", field="params", says=("mapping",)),
    "not UTF-8": NOT_UTF8,
    "NUL character": Bad(pipeline=PIPELINE + "description: a\0b\n", says=("invalid YAML",)),
    "YAML syntax": Bad(pipeline="name: good\nsteps: [steps/make, steps/use\nshm: 64Mi\n", field="yaml",
                       says=("invalid YAML",)),
    "tab indentation": Bad(pipeline=PIPELINE + "checkpoint:\n\tssd: /a\n", says=("invalid YAML",)),
    "top level a list": Bad(pipeline="- name: good\n", says=("top level is not a mapping",)),
    "empty file": Bad(pipeline="", says=("top level is not a mapping",)),
    "nested too deeply": Bad(pipeline=PIPELINE + "description: " + "[" * 5000 + "]" * 5000 + "\n",
                             says=("nested too deeply",)),
    "shm not a size": Bad(pipeline=PIPELINE.replace("64Mi", "lots"), field="shm", line=3),
    "shm negative": Bad(pipeline=PIPELINE.replace("64Mi", "-1Gi"), field="shm"),
    "shm in millibytes": Bad(pipeline=PIPELINE.replace("64Mi", "512m"), field="shm", says=("512Mi",)),
    "shm in GB": Bad(pipeline=PIPELINE.replace("64Mi", "1GB"), field="shm"),
    "parallelism zero": pipeline_with("parallelism: 0\n", field="parallelism", line=5),
    "parallelism a string": pipeline_with("parallelism: '2'\n", field="parallelism"),
    "shards a boolean": pipeline_with("shards: true\n", field="shards"),
    "grace not a number": pipeline_with("grace_seconds: .nan\n", field="grace_seconds"),
    "grace negative": pipeline_with("grace_seconds: -1\n", field="grace_seconds"),
    "bad pipeline name": Bad(pipeline=PIPELINE.replace("name: good", "name: Bad_Name"), field="name", line=1),
    "pipeline name with a newline": Bad(pipeline=PIPELINE.replace("name: good", 'name: "good\\n"'), field="name"),
    "checkpoint a list": pipeline_with("checkpoint: [a]\n", field="checkpoint", says=("mapping",)),
    "relative ssd": pipeline_with("checkpoint: {ssd: relative}\n", field="checkpoint.ssd"),
    "major never produced": pipeline_with("checkpoint: {major: [ghost]}\n", field="checkpoint.major[0]",
                                                                              line=5),
    "result never produced": Bad(pipeline=PIPELINE.replace("results: [b]", "results: [b, nope]"),
                                 field="results[1]", line=4),
    # step.yaml
    "requirements outside the step": Bad(use=USE + "requirements: ../../../../etc/hostname\n",
                                         file="steps/use/step.yaml", field="requirements",
                                         says=("outside the step directory",), line=5),
    "requirements absolute": Bad(use=USE + "requirements: /etc/hostname\n", file="steps/use/step.yaml",
                                 field="requirements", says=("absolute",)),
    "requirements missing": Bad(use=USE + "requirements: nothere.txt\n", file="steps/use/step.yaml",
                                field="requirements", says=("not found",)),
    "two outputs, one env name": Bad(make=MAKE.replace("[a]", "[a, y-z, Y_Z]"), file="steps/make/step.yaml",
                                     field="outputs[2]", says=("IMAGEKIT_OUT_Y_Z",), line=3),
    "two steps, one env name": Bad(make=MAKE.replace("[a]", "[a, y-z]"), use=USE.replace("[b]", "[b, Y_Z]"),
                                   file="steps/use/step.yaml", field="outputs[1]", says=("IMAGEKIT_OUT_Y_Z", "make"),
                                   line=4),
    "command missing": COMMAND_MISSING,
    "command unbalanced quote": Bad(use=USE.replace("[sh, run.sh]", "\"sh 'run.sh\""), file="steps/use/step.yaml",
                                    field="command", says=("cannot be split",), line=2),
    "command a boolean": Bad(use=USE.replace("[sh, run.sh]", "[true]"), file="steps/use/step.yaml",
                             field="command"),
    "command empty": Bad(use=USE.replace("[sh, run.sh]", "[]"), file="steps/use/step.yaml", field="command"),
    "retries negative": Bad(use=USE + "retries: -1\n", file="steps/use/step.yaml", field="retries", line=5),
    "input listed twice": Bad(use=USE.replace("inputs: [a]", "inputs: [a, a]"), file="steps/use/step.yaml",
                              field="inputs"),
    "input never produced": Bad(use=USE.replace("inputs: [a]", "inputs: [a, never-made]"),
                                file="steps/use/step.yaml", field="inputs[1]", says=("no step produces",), line=3),
    "bad data name": Bad(use=USE.replace("[b]", "[b, 'a b']"), file="steps/use/step.yaml", field="outputs[1]",
                         line=4),
    "nested env": Bad(use=USE + "env: {A: {b: 1}}\n", file="steps/use/step.yaml", field="env.A"),
    "env name not a variable": Bad(use=USE + "env: {BAD-NAME: 1}\n", file="steps/use/step.yaml", field="env"),
    "step key given twice": Bad(use=USE + "name: other\n", file="steps/use/step.yaml", field="name",
                                says=("given twice",), line=5),
    "typo in a step key": Bad(use=USE.replace("outputs:", "ouputs:"), file="steps/use/step.yaml", field="ouputs",
                              says=("did you mean `outputs`",), line=4),
    "step.yaml not UTF-8": Bad(use=USE.encode() + b"description: \xff\xfe\n", file="steps/use/step.yaml",
                               says=("not UTF-8",), line=5),
    "step.yaml missing": Bad(use=None, file="steps/use/step.yaml", says=("step.yaml not found",)),
    "bad step name": Bad(use=USE.replace("name: use", "name: Use Me"), file="steps/use/step.yaml", field="name"),
}


@pytest.mark.parametrize("case", BAD_PIPELINES.values(), ids=BAD_PIPELINES.keys())
def test_bad_pipeline_is_one_line_naming_file_field_and_fix(tmp_path: Path, case: Bad) -> None:
    pipeline = write_case(tmp_path, case)
    with pytest.raises(SpecError) as raised:
        load_pipeline(pipeline)
    assert_one_line(str(raised.value), case)


def test_the_good_pipeline_of_the_table_is_good(tmp_path: Path) -> None:
    """The cases differ from this one in one place: if it were refused, they would prove nothing."""
    spec = load_pipeline(write_case(tmp_path, Bad()))
    assert [step.name for step in spec.steps] == ["make", "use"]


def test_requirements_inside_the_step_are_taken(tmp_path: Path) -> None:
    case = Bad(use=USE + "requirements: deps/requirements.txt\n")
    pipeline = write_case(tmp_path, case)
    (pipeline.parent / "steps/use/deps").mkdir()
    (pipeline.parent / "steps/use/deps/requirements.txt").write_text("numpy\n")
    assert load_pipeline(pipeline).step("use").requirements_text == "numpy\n"


# The CLI: flags, manifests and the refusals above as a user meets them (exit code, one line on stderr).

@dataclass(frozen=True)
class Flags:
    args: tuple[str, ...]
    words: tuple[str, ...]
    code: int = 2


BAD_FLAGS: dict[str, Flags] = {
    "param without =": Flags(("run", "{p}", "--param", "NOEQ"), ("--param", "NOEQ", "fix:")),
    "param not a variable name": Flags(("run", "{p}", "--param", "1X=2"), ("--param",)),
    "output format": Flags(("run", "{p}", "--output", "xml"), ("--output", "xml", "imagekit run --help")),
    "shard index not a number": Flags(("run", "{p}", "--shard-index", "abc"), ("--shard-index",)),
    "no-local": Flags(("run", "{p}", "--no-local"), ("--no-local", "fix:")),
    "unknown command": Flags(("bogus",), ("bogus",)),
    "unknown option": Flags(("validate", "{p}", "--colour"), ("--colour",)),
    "missing argument": Flags(("validate",), ("imagekit validate", "Missing argument 'pipeline'")),
    "inspect source": Flags(("inspect", "--source", "bogus", "x"), ("--source", "bogus")),
    "render replicas zero": Flags(("deploy", "render", "{p}", "--image", "127.0.0.1:5000/g:1", "--replicas", "0"),
                                  ("--replicas",)),
    "render memory limit": Flags(("deploy", "render", "{p}", "--image", "127.0.0.1:5000/g:1", "--memory-limit",
                                  "lots"), ("--memory-limit",)),
    "render image": Flags(("deploy", "render", "{p}", "--image", "bad image"), ("--image",)),
    "render without image": Flags(("deploy", "render", "{p}"), ("--image",)),
    "build tag": Flags(("build", "{p}", "--tag", "Bad Tag"), ("--tag",)),
}


@pytest.mark.parametrize("flags", BAD_FLAGS.values(), ids=BAD_FLAGS.keys())
def test_bad_flag_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: Flags) -> None:
    pipeline = good(tmp_path)
    code, err = cli(capsys, *(arg.replace("{p}", str(pipeline)) for arg in flags.args))
    assert_refused(code, err, flags.code, *flags.words)


@pytest.mark.parametrize("verb", [
    ("validate", "{p}"), ("run", "{p}", "--no-checkpoints"), ("status", "{p}"),
    ("deploy", "render", "{p}", "--image", "127.0.0.1:5000/g:1"), ("build", "{p}", "--tag", "x:1"),
], ids=["validate", "run", "status", "deploy render", "build"])
def test_every_verb_refuses_a_step_outside_the_pipeline_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: tuple[str, ...]) -> None:
    pipeline = write_case(tmp_path, BAD_PIPELINES["step outside the pipeline"])
    code, err = cli(capsys, *(arg.replace("{p}", str(pipeline)) for arg in verb))
    assert_refused(code, err, 2, "pipeline.yaml, line 2: steps[1]:", "outside")


MANIFEST = "apiVersion: v1\nkind: Service\nmetadata:\n  name: good\n"
BAD_MANIFESTS: dict[str, tuple[dict[str, str | bytes], tuple[str, ...]]] = {
    "not UTF-8": ({"svc.yaml": MANIFEST.encode() + b"  labels: {a: \xe9}\n"}, ("svc.yaml", "UTF-8")),
    "key given twice": ({"svc.yaml": MANIFEST + "kind: Service\n"}, ("svc.yaml, line 5", "kind", "given twice")),
    "YAML syntax": ({"svc.yaml": MANIFEST + "  labels: {a: [\n"}, ("svc.yaml", "invalid YAML")),
    "document not a mapping": ({"svc.yaml": "- a\n- b\n"}, ("svc.yaml", "not a mapping")),
    "resource outside the directory": ({"kustomization.yaml": "resources: [../../etc/hostname]\n"},
                                       ("kustomization.yaml", "outside")),
    "resource missing": ({"kustomization.yaml": "resources: [gone.yaml]\n"}, ("kustomization.yaml", "gone.yaml")),
    "resources not a list": ({"kustomization.yaml": "resources: gone.yaml\n"}, ("kustomization.yaml",)),
    "no resources": ({"notes.txt": "x"}, ("holds no Kubernetes resources",)),
}


@pytest.mark.parametrize("files, words", BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
def test_bad_manifests_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               files: dict[str, str | bytes], words: tuple[str, ...]) -> None:
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for name, text in files.items():
        (rendered / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    code, err = cli(capsys, "deploy", "validate", rendered)
    assert_refused(code, err, 2, *words)


def test_missing_manifest_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = cli(capsys, "deploy", "validate", tmp_path / "nowhere")
    assert_refused(code, err, 2, "nowhere", "fix:")


def test_yaml_that_would_blow_up_or_block_is_refused_with_one_line(tmp_path: Path) -> None:
    """An alias bomb, a nested bomb, a file past 1 MiB, a FIFO and a device: exit 2, one line, no hang."""
    import os

    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 20))
    cases = {"bomb.yaml": bomb, "deep.yaml": "a: " + "[" * 200 + "]" * 200 + "\n",
             "big.yaml": "name: big\n" + "# padding\n" * 120_000}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    os.mkfifo(tmp_path / "fifo.yaml")
    for path, words in ((tmp_path / "bomb.yaml", "aliases"), (tmp_path / "deep.yaml", "nested too deeply"),
                        (tmp_path / "big.yaml", "more than a pipeline file may be"),
                        (tmp_path / "fifo.yaml", "not a regular file"), (Path("/dev/zero"), "not a regular file")):
        result = imagekit("validate", path, timeout=30)
        assert result.returncode == 2, (path, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and str(path) in lines[0], (path, result.stderr)
