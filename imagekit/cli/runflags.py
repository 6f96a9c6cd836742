"""The runtime's run flags (imagekit_runtime/run/flags.py) as typer options: `imagekit run` and `imagekit status`
take exactly the flags the image's entrypoint takes, with the same help, from the one table.

typer reads a command's options from its function's signature, so the signature is made from the table; the
command's body gets the pipeline, the parsed RunFlags and its own extra options by name.
"""
from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from imagekit_runtime.run.flags import Flag, RunFlags, flags_of

PIPELINE_HELP = "pipeline.yaml, or a directory holding one"
_ANNOTATIONS: dict[str, Any] = {"text": str | None, "int": int | None, "float": float | None, "switch": bool,
                                "list": list[str], "choice": str}


def _option(flag: Flag) -> inspect.Parameter:
    names = [flag.option, *([flag.short] if flag.short else [])]
    default: Any = RunFlags.__dataclass_fields__[flag.dest].default
    annotation = _ANNOTATIONS[flag.kind]
    if flag.kind == "list":
        default = []
    elif flag.kind == "choice":  # typer takes choices as an Enum
        make_enum: Any = enum.Enum  # the functional API, with a name that is not a literal
        annotation = make_enum(flag.dest.title(), {choice: choice for choice in flag.choices}, type=str)
        default = annotation(default)
    option = typer.Option(default, *names, help=flag.help, metavar=flag.metavar, show_default=False)
    return inspect.Parameter(flag.dest, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def command_with_flags(command: str, body: Callable[..., None],
                       extra: Sequence[inspect.Parameter] = ()) -> Callable[..., None]:
    """A function for typer: PIPELINE, the run flags of `command`, then `extra` options; it calls
    body(pipeline, flags, **extra_values)."""
    table = flags_of(command)
    dests = {flag.dest for flag in table}

    def run(**values: Any) -> None:
        pipeline = values.pop("pipeline")
        flags = RunFlags.from_values({name: value.value if isinstance(value, enum.Enum) else value
                                      for name, value in values.items() if name in dests})
        body(pipeline, flags, **{name: value for name, value in values.items() if name not in dests})

    parameters = [inspect.Parameter("pipeline", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                                    default=typer.Argument(..., help=PIPELINE_HELP)),
                  *map(_option, table), *extra]
    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    run.__doc__ = body.__doc__
    return run
