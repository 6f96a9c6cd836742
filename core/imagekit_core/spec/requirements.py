"""A step's requirements file as imagekit reads it before pip does: the files it includes, and what it may hold.

Builds install every step's dependencies from wheels pinned by hash (`imagekit lock`), and `run --local`
keys a step's venv by the requirements' text: a VCS URL, an editable install or a local path would be
neither pinnable nor noticed when it changes, so they are refused at validation, naming the line.
"""
from __future__ import annotations

import re
from pathlib import Path

INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|\s*=\s*)(\S+)")
_EDITABLE = re.compile(r"^\s*(?:-e|--editable)\b")
_VCS = re.compile(r"(?:^|[\s@])(?:git|hg|svn|bzr)\+[a-z]+://", re.IGNORECASE)
_LOCAL = re.compile(r"^\s*(?:\.{1,2}/|/|~|file:)|@\s*file:", re.IGNORECASE)


def requirement_files(requirements: Path) -> list[Path]:
    """The requirements file and every file it includes with -r/-c, recursively, each once, in order."""
    found: list[Path] = []
    pending = [requirements]
    while pending:
        path = pending.pop(0)
        if path in found:
            continue
        found.append(path)
        if not path.is_file():
            continue  # pip names the missing file when it resolves
        for line in path.read_text(errors="replace").splitlines():
            match = INCLUDE.match(line)
            if match:
                pending.append((path.parent / match.group(1)).resolve())
    return found


def unsupported(requirements: Path) -> tuple[Path, int, str, str] | None:
    """(file, line number, the line, why) of the first requirement a build cannot pin, or None."""
    for path in requirement_files(requirements):
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            text = line.split(" #", 1)[0].strip()
            if not text or text.startswith("#"):
                continue
            if _EDITABLE.match(text):
                return path, number, text, "an editable install"
            if _VCS.search(text):
                return path, number, text, "a VCS URL"
            if _LOCAL.search(text) and not INCLUDE.match(text):
                return path, number, text, "a local path"
    return None
