"""A command-line flag declared once, as data: the image's entrypoint renders a table of them with argparse,
the imagekit CLI with typer (imagekit/cli/flagtable.py), and both hand the values on as one dataclass."""
from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

Values = TypeVar("Values")


@dataclass(frozen=True)
class Flag:
    dest: str                 # the field of the dataclass the values go to
    help: str                 # the default, when there is one, is in it
    kind: str = "text"        # text | int | float | switch | list | int-list | choice
    commands: frozenset[str] = frozenset()  # the commands that take it; empty: every command of its table
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    short: str | None = None
    required: bool = False

    @property
    def option(self) -> str:
        return "--" + self.dest.replace("_", "-")


def add_to_parser(parser: argparse.ArgumentParser, flags: Iterable[Flag]) -> None:
    """The flags on an argparse parser."""
    for flag in flags:
        names = [flag.option, *([flag.short] if flag.short else [])]
        if flag.kind == "switch":
            parser.add_argument(*names, dest=flag.dest, action="store_true", help=flag.help)
        elif flag.kind in ("list", "int-list"):
            parser.add_argument(*names, dest=flag.dest, action="append", default=[], metavar=flag.metavar,
                                type=int if flag.kind == "int-list" else str, help=flag.help)
        else:
            kind = {"int": int, "float": float}.get(flag.kind, str)
            parser.add_argument(*names, dest=flag.dest, type=kind, metavar=flag.metavar, required=flag.required,
                                choices=flag.choices or None, help=flag.help)


def flag_values(values: type[Values], parsed: Mapping[str, Any]) -> Values:
    """The dataclass `values` (one field per flag) from parsed values by name; a value of None, or a name that is
    no field, keeps the field's default."""
    known = {field.name for field in fields(values)}  # type: ignore[arg-type]
    return values(**{name: value for name, value in parsed.items() if name in known and value is not None})
