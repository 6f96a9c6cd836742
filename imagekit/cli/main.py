"""The `imagekit` command: assembles one module per verb, and turns every failure into one line and an exit code."""
from __future__ import annotations

import importlib
import os
import select
import sys
import traceback
from collections.abc import Iterable
from copy import copy as shallow_copy
from typing import Any

import typer
from typer.core import TyperGroup

from imagekit_core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL
from imagekit_core.redact import redact

try:  # the click typer vendors (see failures.py)
    from typer._click import Command as ClickCommand
    from typer._click import Context as ClickContext
    from typer._click import Parameter as ClickParameter
except ImportError:  # pragma: no cover - an older typer on the real click
    from click import Command as ClickCommand  # type: ignore[assignment]
    from click import Context as ClickContext  # type: ignore[assignment]
    from click import Parameter as ClickParameter  # type: ignore[assignment]

from imagekit import __version__

from .common import CliState, print_error, setup_logging, stderr
from .failures import click_errors, explain, write_crash_report


class ImagekitGroup(TyperGroup):
    """The top-level command: every failure below it becomes one line on stderr and its exit code."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, click_errors.NoArgsIsHelpError):
            raise
        except Exception as exc:  # the one place every failure is turned into a line and a code
            state = ctx.find_object(CliState) or CliState()
            raise typer.Exit(report_failure(exc, state.argv or sys.argv[1:], state.verbose)) from None


VERBOSE_HELP = "log every external command; show the trace of an error (also accepted after the verb)"


def show_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"imagekit {__version__}\n")
        raise typer.Exit()


def set_verbose(ctx: ClickContext, _param: object, value: bool) -> None:
    """-v/--verbose, before the verb or after it: either place turns verbose logging on."""
    if value:
        ctx.ensure_object(CliState).verbose = True
        setup_logging(True)


def main_options(ctx: typer.Context,
                 verbose: bool = typer.Option(False, "--verbose", "-v", help=VERBOSE_HELP),
                 version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                              help="print imagekit's version and exit")) -> None:
    """imagekit: build, run and deploy pod pipelines."""
    state = ctx.ensure_object(CliState)
    state.verbose = state.verbose or verbose
    setup_logging(state.verbose)


# Each verb lives in its own module (imagekit.cli.<module>), whose register(app) adds it; in the order `--help`
# lists them. Only the module of the verb a command line names is imported: importing every one took 0.65 s of
# each call (`python3 -c "import imagekit.cli.main"` before this), `imagekit validate` alone needs 0.22 s.
VERB_MODULES = {"init": "init", "validate": "validate", "graph": "graph", "run": "run", "status": "run",
                "deploy": "deploy", "base": "base", "build": "build", "lock": "lock", "sbom": "sbom",
                "push": "push", "inspect": "inspect", "pod": "pod"}


def make_app(verbs: Iterable[str] | None = None) -> typer.Typer:
    """The `imagekit` command with these verbs (every verb: None), each module registered once."""
    app = typer.Typer(
        cls=ImagekitGroup,
        name="imagekit",
        help="Build a pipeline of step programs into one image and run it as a pod pipeline over shared memory.",
        no_args_is_help=True,
        add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, PowerShell)
        pretty_exceptions_enable=False,
        rich_markup_mode=None,  # plain click help: "[default: …]" stays text instead of being read as markup
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(main_options)
    wanted = VERB_MODULES if verbs is None else {verb: VERB_MODULES[verb] for verb in verbs}
    for module in dict.fromkeys(wanted.values()):
        importlib.import_module(f"{__package__}.{module}").register(app)
    return app


def verb_of(args: list[str]) -> str | None:
    """The verb a command line names (its first word that is not an option), when it is one; else None."""
    first = next((arg for arg in args if not arg.startswith("-")), None)
    return first if first in VERB_MODULES else None


def with_verbose_everywhere(command: ClickCommand, verbose: ClickParameter | None = None) -> ClickCommand:
    """Give every verb (and sub-verb) the top-level -v/--verbose too, so it also works after the verb."""
    if verbose is None:
        verbose = next(param for param in command.params if "--verbose" in param.opts)
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            with_verbose_everywhere(sub, verbose)
    elif not any("--verbose" in param.opts for param in command.params):
        copy = shallow_copy(verbose)
        copy.expose_value = False  # the verb's function has no such argument: the callback records it
        copy.callback = set_verbose
        command.params.append(copy)
    return command


def imagekit_command(args: list[str] | None = None) -> ClickCommand:
    """The command for a command line: only its verb when it names one (help, a typo or completion: all)."""
    verb = verb_of(args or [])
    return with_verbose_everywhere(typer.main.get_command(make_app(None if verb is None else [verb])))


def main(argv: list[str] | None = None) -> int:
    """Run the command line; every error is one line on stderr and an exit code (the trace with --verbose)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state = CliState(argv=args)
    try:
        code = imagekit_command(args).main(args=args, prog_name="imagekit", standalone_mode=False, obj=state)
    except click_errors.NoArgsIsHelpError as exc:
        help_text = exc.ctx.get_help() if exc.ctx is not None else ""  # typer's rich help prints itself
        if help_text:
            stderr.print(help_text)
        return EXIT_BAD_INPUT
    except typer.Abort:
        print_error("interrupted")
        return 130
    except Exception as exc:  # a usage error before any verb (`imagekit --colour`)
        return report_failure(exc, args, state.verbose)
    return code if isinstance(code, int) else 0


def stdout_closed() -> bool:
    """True when whoever read stdout has gone (`imagekit ... | head -1`): a pipe with no reader left."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def quiet_stdout() -> None:
    """Send whatever is still buffered for stdout nowhere, so exiting does not fail a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def report_failure(exc: Exception, args: list[str], verbose: bool) -> int:
    if isinstance(exc, BrokenPipeError) and stdout_closed():
        # The reader stopped early, as `head` and `grep -q` do: not a failure (git and kubectl exit 0 too).
        quiet_stdout()
        return 0
    if verbose:
        stderr.print(redact("".join(traceback.format_exception(exc)).rstrip()), markup=False)
    explained = explain(exc)
    if explained is not None:
        code, message = explained
        print_error(message)
        return code
    report = write_crash_report(exc, args)
    print_error(f"internal error, a bug in imagekit: {type(exc).__name__}: {exc} "
                f"(the full trace is in {report}; please report it)")
    return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
