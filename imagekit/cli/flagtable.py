"""A table of flags (imagekit_runtime/flagtable.py) as typer options: `imagekit run` and `imagekit status` take
exactly the flags the image's entrypoint takes, and `imagekit deploy render` the deploy table's, each declared
once with its help and default.

typer reads a command's options from its function's signature, so the signature is made from the table; the
command's body gets its argument, the parsed flags (one dataclass) and its own extra options by name.
"""
from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

import typer

from imagekit_core.flagtable import Flag, flag_values

PIPELINE_HELP = "pipeline.yaml, or a directory holding one"
_ANNOTATIONS: dict[str, Any] = {"text": str | None, "int": int | None, "float": float | None, "switch": bool,
                                "list": list[str], "int-list": list[int], "choice": str}


Values = TypeVar("Values")


def _default(values: type, dest: str) -> Any:
    declared = {field.name: field for field in fields(values)}[dest]
    return declared.default if declared.default is not MISSING else None


def _option(flag: Flag, values: type) -> inspect.Parameter:
    names = [flag.option, *([flag.short] if flag.short else [])]
    default: Any = ... if flag.required else _default(values, flag.dest)
    annotation = _ANNOTATIONS[flag.kind]
    if flag.kind in ("list", "int-list"):
        default = []
    elif flag.kind == "choice":  # typer takes choices as an Enum
        make_enum: Any = enum.Enum  # the functional API, with a name that is not a literal
        annotation = make_enum(flag.dest.title(), {choice: choice for choice in flag.choices}, type=str)
        default = annotation(default) if default is not None else None
    option = typer.Option(default, *names, help=flag.help, metavar=flag.metavar, show_default=False)
    return inspect.Parameter(flag.dest, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def command_with_flags(table: Sequence[Flag], values: type[Values], body: Callable[..., None],
                       extra: Sequence[inspect.Parameter] = ()) -> Callable[..., None]:
    """A function for typer: PIPELINE, the table's options, then `extra` options; it calls
    body(pipeline, flag_values(values, parsed), **extra_values)."""
    dests = {flag.dest for flag in table}

    def command(**given: Any) -> None:
        pipeline = given.pop("pipeline")
        flags = flag_values(values, {name: value.value if isinstance(value, enum.Enum) else value
                                    for name, value in given.items() if name in dests})
        body(pipeline, flags, **{name: value for name, value in given.items() if name not in dests})

    parameters = [inspect.Parameter("pipeline", inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                                    default=typer.Argument(..., help=PIPELINE_HELP)),
                  *(_option(flag, values) for flag in table), *extra]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    command.__doc__ = body.__doc__
    return command


def option(name: str, annotation: Any, default: Any, *names: str, **settings: Any) -> inspect.Parameter:
    """An extra option of a command made by command_with_flags (one that is not a flag of the table)."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *names, **settings))
