"""Install wheels into a directory by unpacking them, as pip's `--target` lays them out, without pip.

A wheel is a zip laid out for site-packages (PEP 427): its files go to the target as they are,
`<name>.data/purelib|platlib/` to the target too, `<name>.data/scripts/` to `bin/` (shebang
`#!python` made `#!/usr/bin/env python3`), other `.data/` directories (headers, data) under the
target as pip puts them; console scripts from entry_points.txt get a launcher in `bin/`. Nothing
is compiled. Each wheel is checked against the hashes of its lock before it is opened (deps.py).
Unpacking takes a fraction of `pip install`'s time, and the tree is the same on every machine.
"""
from __future__ import annotations

import configparser
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagekit_core.errors import ImagekitError

SHEBANG = b"#!/usr/bin/env python3\n"
LAUNCHER = """\
#!/usr/bin/env python3
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {head}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


class BadWheel(ImagekitError):
    exit_code = 2


def _destination(name: str, data_dir: str) -> PurePosixPath | None:
    """Where a member of the wheel goes, relative to the target (None: nowhere, e.g. a directory entry)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise BadWheel(f"wheel member {name!r} points outside the target")
    if name.endswith("/"):
        return None
    if path.parts[0] != data_dir:
        return path
    if len(path.parts) < 3:
        return None
    kind, rest = path.parts[1], PurePosixPath(*path.parts[2:])
    if kind in ("purelib", "platlib"):
        return rest
    if kind == "scripts":
        return PurePosixPath("bin") / rest
    if kind == "headers":
        return PurePosixPath("include") / rest
    return rest  # data: relative to the install root, which is the target


def _write(target: Path, relative: PurePosixPath, content: bytes, executable: bool) -> None:
    path = target / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, 0o755 if executable else 0o644)


def _console_scripts(entry_points: str) -> list[tuple[str, str, str]]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(entry_points)
    scripts = []
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            for name, value in parser.items(section):
                module, _, attribute = value.partition(":")
                attribute = attribute.split("[", 1)[0].strip()
                scripts.append((name.strip(), module.strip(), attribute))
    return scripts


@dataclass(frozen=True)
class PlacedFile:
    """One file a wheel puts in the tree: where, whether executable, and its content — a member of the
    wheel as stored, or bytes imagekit made (a script's rewritten shebang, a console-script launcher)."""

    relative: PurePosixPath
    executable: bool
    size: int
    wheel: Path
    member: str = ""  # the content is this member of wheel, as stored ...
    content: bytes | None = None  # ... unless given here


def placed_files(wheel: Path) -> list[PlacedFile]:
    """Every file one wheel puts in the tree (pip --target's layout), in the order they are written."""
    name, version = wheel.name.split("-")[:2]
    data_dir = f"{name}-{version}.data"
    placed = []
    with zipfile.ZipFile(wheel) as archive:
        entry_points = ""
        for info in archive.infolist():
            relative = _destination(info.filename, data_dir)
            if relative is None:
                continue
            executable = bool((info.external_attr >> 16) & stat.S_IXUSR)
            content: bytes | None = None
            if relative.parts[0] == "bin" and info.filename.startswith(f"{data_dir}/scripts/"):
                content = archive.read(info)
                if content.startswith(b"#!python"):
                    content = SHEBANG + content.split(b"\n", 1)[1] if b"\n" in content else SHEBANG
                executable = True
            if relative.name == "entry_points.txt" and relative.parent.name.endswith(".dist-info"):
                entry_points = archive.read(info).decode()
            size = info.file_size if content is None else len(content)
            placed.append(PlacedFile(relative, executable, size, wheel, info.filename, content))
    for script, module, attribute in _console_scripts(entry_points):
        head = attribute.split(".", 1)[0]
        launcher = LAUNCHER.format(module=module, head=head, call=attribute).encode()
        placed.append(PlacedFile(PurePosixPath("bin") / script, True, len(launcher), wheel, content=launcher))
    return placed


def unpack_wheel(wheel: Path, target: Path) -> None:
    """One wheel into target (pip --target's layout)."""
    with zipfile.ZipFile(wheel) as archive:
        for file in placed_files(wheel):
            content = file.content if file.content is not None else archive.read(file.member)
            _write(target, file.relative, content, file.executable)


def unpack_wheels(wheels: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        unpack_wheel(wheel, target)
