"""The generated supervisord configuration, read back by supervisord's own parser: what each step gets."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from supervisor.options import ServerOptions

from imagekit_core.errors import SpecError
from imagekit_runtime.supervise.config import ProgramSpec, render


def program(root: Path, name: str = "tokenize", argv: tuple[str, ...] = ("/usr/bin/python3", "main.py"),
            environment: dict[str, str] | None = None, stop_wait_seconds: float = 10.0) -> ProgramSpec:
    return ProgramSpec(name=name, argv=argv, directory=root / "steps" / name, environment=environment or {},
                       log_file=root / "run" / "logs" / f"{name}.log", stop_wait_seconds=stop_wait_seconds)


def parsed(root: Path, *programs: ProgramSpec) -> tuple[ServerOptions, dict[str, Any]]:
    """Render, then let supervisord read the file: its options and its process configs by name."""
    for directory in (root / "run" / "logs", *(p.directory for p in programs)):
        directory.mkdir(parents=True, exist_ok=True)
    conf = root / "run" / "supervisord.conf"
    conf.write_text(render(root / "sock" / "supervisor.sock", root / "run", list(programs)))
    options = ServerOptions()
    options.configfile = str(conf)
    options.process_config(do_usage=False)
    configs = {group.name: group.process_configs[0] for group in options.process_group_configs}
    return options, configs


def test_supervisord_itself_is_configured_for_the_run(tmp_path: Path) -> None:
    options, configs = parsed(tmp_path)
    assert configs == {}
    assert options.nodaemon is True
    assert options.logfile == str(tmp_path / "run" / "supervisord.log")
    assert options.pidfile == str(tmp_path / "run" / "supervisord.pid")
    assert options.childlogdir == str(tmp_path / "run" / "logs")
    (server,) = options.configroot.supervisord.server_configs
    assert server["file"] == str(tmp_path / "sock" / "supervisor.sock")
    assert server["chmod"] == 0o700


def test_a_step_is_started_by_the_conductor_only_and_killed_as_a_group(tmp_path: Path) -> None:
    _, configs = parsed(tmp_path, program(tmp_path, stop_wait_seconds=7.4))
    config = configs["tokenize"]
    assert config.autostart is False
    assert config.autorestart is False
    assert (config.startsecs, config.startretries, config.exitcodes) == (0, 0, [0])
    assert config.stopasgroup is True
    assert config.killasgroup is True
    assert config.stopsignal == 15  # SIGTERM, then SIGKILL after stopwaitsecs
    assert config.stopwaitsecs == 7
    assert config.redirect_stderr is True
    assert config.directory == str(tmp_path / "steps" / "tokenize")
    assert config.stdout_logfile == str(tmp_path / "run" / "logs" / "tokenize.log")
    assert (config.stdout_logfile_maxbytes, config.stdout_logfile_backups) == (0, 0)


@pytest.mark.parametrize(("grace", "seconds"), [(0.0, 1), (0.4, 1), (1.6, 2), (30, 30)])
def test_stopwaitsecs_is_the_grace_rounded_and_at_least_one(tmp_path: Path, grace: float, seconds: int) -> None:
    _, configs = parsed(tmp_path, program(tmp_path, stop_wait_seconds=grace))
    assert configs["tokenize"].stopwaitsecs == seconds


ARGUMENTS = [
    "plain", "with space", "it's", 'say "hi"', "100%", "%(here)s", "", "$HOME", "a\\b", "tab\there", "*.txt",
    "--flag=a,b", "#not-a-comment", "; neither", "ünïcode",
]


def test_arguments_reach_the_step_exactly(tmp_path: Path) -> None:
    argv = ("/usr/bin/python3", "main.py", *ARGUMENTS)
    _, configs = parsed(tmp_path, program(tmp_path, argv=argv))
    # supervisord splits `command` with shlex (POSIX) after expanding %(...)s; that split must give argv back.
    assert shlex.split(configs["tokenize"].command) == list(argv)


ENVIRONMENT = {
    "PLAIN": "value",
    "SPACES": "a b  c",
    "COMMA": "a,b=c",
    "PERCENT": "50%",
    "FORMAT": "%(ENV_HOME)s",
    "BACKSLASH": "C:\\temp\\new",
    "REGEX": "\\d+",
    "DOUBLE": 'say "hi" now',
    "SINGLE": "it's",
    "EMPTY": "",
    "HASH": "a#b",
    "PATH": "/venv/bin:/usr/local/bin:/usr/bin",
}


def test_environment_values_reach_the_step_exactly(tmp_path: Path) -> None:
    _, configs = parsed(tmp_path, program(tmp_path, environment=ENVIRONMENT))
    assert configs["tokenize"].environment == ENVIRONMENT


@pytest.mark.parametrize(("value", "problem"), [
    ("two\nlines", "newline"),
    ("nul\0byte", "newline"),
    ('"quoted"', "begins or ends with a quote"),
    ("trailing'", "begins or ends with a quote"),
    ("""both ' and " quotes""", "both kinds of quote"),
])
def test_environment_value_supervisord_cannot_carry_is_refused_naming_the_variable(tmp_path: Path, value: str,
                                                                                   problem: str) -> None:
    with pytest.raises(SpecError) as raised:
        render(tmp_path / "s.sock", tmp_path, [program(tmp_path, environment={"OK": "1", "GREETING": value})])
    assert raised.value.field == "GREETING"
    assert problem in raised.value.problem


def test_paths_with_percent_signs_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "100%"
    options, configs = parsed(root, program(root, name="count"))
    assert options.logfile == str(root / "run" / "supervisord.log")
    assert configs["count"].directory == str(root / "steps" / "count")
    assert configs["count"].stdout_logfile == str(root / "run" / "logs" / "count.log")


def test_one_program_per_step_each_with_its_own_environment(tmp_path: Path) -> None:
    _, configs = parsed(tmp_path, program(tmp_path, "gen", environment={"IMAGEKIT_STEP": "gen"}),
                        program(tmp_path, "count", environment={"IMAGEKIT_STEP": "count"}))
    assert sorted(configs) == ["count", "gen"]
    assert configs["gen"].environment == {"IMAGEKIT_STEP": "gen"}
    assert configs["count"].environment == {"IMAGEKIT_STEP": "count"}
