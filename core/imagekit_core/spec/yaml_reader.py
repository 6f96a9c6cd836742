"""Reading pipeline and step YAML strictly, for load.py's one-line errors.

The text must be UTF-8, no mapping may give a key twice, and every mapping
and list remembers the line of each key and item, so an error about a field
names the line it is on. An unknown key gets the closest known key as fix.
"""
from __future__ import annotations

import difflib
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import ConstructorError

from imagekit_core.contract import env_problem
from imagekit_core.errors import SpecError

MERGE_TAG = "tag:yaml.org,2002:merge"
FIELD_PART_RE = re.compile(r"\[(\d+)\]|([^.\[\]]+)")

Parsed = TypeVar("Parsed")


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}


class LineList(list[Any]):
    """A YAML list that remembers the line of each item."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


class DuplicateKey(ConstructorError):
    def __init__(self, key: Any, first_line: int, mark: yaml.Mark) -> None:
        self.key = key
        self.first_line = first_line
        super().__init__(None, None, f"key {key!r} is given twice", mark)


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode) -> None:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise DuplicateKey(key, seen[key], key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    yield data
    _refuse_duplicate_keys(loader, node)
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=False)
        try:
            hash(key)
        except TypeError:
            raise ConstructorError("while constructing a mapping", node.start_mark,
                                   "found an unhashable key", key_node.start_mark) from None
        data[key] = loader.construct_object(value_node, deep=False)
        data.lines[key] = key_node.start_mark.line + 1


def _construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList()
    yield data
    data.lines.extend(child.start_mark.line + 1 for child in node.value)
    data.extend(loader.construct_sequence(node))


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice (plain dicts and lists)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep=deep)


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice and keeps line numbers (LineDict, LineList)."""


StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
StrictLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def is_dir(path: Path) -> bool:
    """path.is_dir(), False where the name itself is impossible (too long, a NUL byte)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def is_file(path: Path) -> bool:
    """path.is_file(), False where the name itself is impossible (too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def field_name(key: Any) -> str:
    """A mapping key as a field name in a one-line message: as written when printable, else its repr."""
    return key if isinstance(key, str) and key.isprintable() and key else repr(key)


# Bounds of a pipeline's or step's YAML (hostile input): its bytes, its aliases and how deep it nests.
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_ALIASES = 100
MAX_YAML_DEPTH = 50


def read_yaml_text(path: Path) -> str:
    """The text of a YAML file, or a SpecError: missing, a directory, not a regular file (a FIFO or a device would
    block or never end), larger than MAX_YAML_BYTES, unreadable, not UTF-8."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(path, "-", "is not a regular file (a pipe, a device or a socket)", "point at a YAML file")
        if info.st_size > MAX_YAML_BYTES:
            raise SpecError(path, "-", f"is {info.st_size} bytes, more than a pipeline file may be "
                            f"({MAX_YAML_BYTES})", "keep data out of the YAML: a source, or a file in the step")
        with open(path, "rb") as source:
            raw = source.read(MAX_YAML_BYTES + 1)
        if len(raw) > MAX_YAML_BYTES:
            raise SpecError(path, "-", f"grew past {MAX_YAML_BYTES} bytes while it was read", "check the path")
    except FileNotFoundError:
        raise SpecError(path, "-", "file not found", "check the path") from None
    except IsADirectoryError:
        raise SpecError(path, "-", "is a directory", "point at the YAML file itself") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise SpecError(path, "-", f"cannot be read ({reason})", "check the path and its permissions") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(path, "-", f"is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})",
                        "save the file as UTF-8", line=line) from None


def check_shape(text: str, path: Path) -> None:
    """Refuse an alias bomb or a deeply nested document before anything is built from it (events only)."""
    aliases = depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise SpecError(path, "yaml", f"more than {MAX_YAML_ALIASES} aliases (*name)",
                                "write the values out; aliases are for a few repeated blocks",
                                line=event.start_mark.line + 1 if event.start_mark else None)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise SpecError(path, "yaml", f"nested too deeply (more than {MAX_YAML_DEPTH} levels)", "flatten it",
                                line=event.start_mark.line + 1 if event.start_mark else None)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def parse_yaml(text: str, path: Path) -> Any:
    """Parse one YAML document with StrictLoader; every failure is one SpecError naming the line."""
    _parsed(lambda: check_shape(text, path), path)
    return _parsed(lambda: yaml.load(text, Loader=StrictLoader), path)  # a SafeLoader


def parse_yaml_documents(text: str, path: Path) -> list[Any]:
    """Parse a YAML stream (plain dicts, no key twice); every failure is one SpecError naming the line."""
    _parsed(lambda: check_shape(text, path), path)
    return _parsed(lambda: list(yaml.load_all(text, Loader=UniqueKeyLoader)), path)  # a SafeLoader


def _parsed(parse: Callable[[], Parsed], path: Path) -> Parsed:
    try:
        return parse()
    except DuplicateKey as exc:
        raise SpecError(path, field_name(exc.key), f"given twice (first on line {exc.first_line})", "keep one of them",
                        line=exc.problem_mark.line + 1 if exc.problem_mark else None) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(path, "yaml", f"invalid YAML: {problem}", "fix the YAML syntax",
                        line=mark.line + 1 if mark else None) from None
    except RecursionError:
        raise SpecError(path, "yaml", "nested too deeply", "flatten the YAML") from None


@dataclass(frozen=True)
class YamlFile:
    """A parsed YAML mapping and its file: errors about its fields carry the field's line."""

    path: Path
    data: LineDict

    @classmethod
    def load(cls, path: Path) -> YamlFile:
        data = parse_yaml(read_yaml_text(path), path)
        if not isinstance(data, LineDict):
            raise SpecError(path, "-", "top level is not a mapping", "write `key: value` pairs at the top level")
        return cls(path, data)

    def line_of(self, field: str) -> int | None:
        """The line of a field such as `checkpoint.major[0]`, or of its nearest parent the file gives."""
        node: Any = self.data
        line: int | None = None
        for index, key in FIELD_PART_RE.findall(field):
            if index and isinstance(node, LineList) and int(index) < len(node):
                line, node = node.lines[int(index)], node[int(index)]
            elif key and isinstance(node, LineDict) and key in node.lines:
                line, node = node.lines[key], node[key]
            else:
                break
        return line

    def error(self, field: str, problem: str, fix: str) -> SpecError:
        return SpecError(self.path, field, problem, fix, line=self.line_of(field))

    def check_keys(self, mapping: dict[Any, Any], allowed: Iterable[str], prefix: str = "") -> None:
        """Refuse a key not in allowed; a near miss (`paralellism`) gets the key it resembles as fix."""
        known = sorted(allowed)
        for key in mapping:
            if key in known:
                continue
            close = difflib.get_close_matches(str(key), known, n=1)
            fix = f"did you mean `{prefix}{close[0]}`?" if close else f"remove it; allowed keys: {', '.join(known)}"
            name = field_name(key)
            line = mapping.lines.get(key) if isinstance(mapping, LineDict) else None
            raise SpecError(self.path, f"{prefix}{name}", "unknown key", fix, line=line)

    def string_list(self, value: Any, field: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        """A list of strings (a single string counts as a list of one), each matching pattern, none twice."""
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(field, "must be a list of strings", f"write `{field}: [a, b]`")
        for index, item in enumerate(value):
            if pattern is not None and not pattern.match(item):
                raise self.error(f"{field}[{index}]", f"bad name {item!r}", "use letters, digits, '-' and '_' only")
        if len(set(value)) != len(value):
            raise self.error(field, "lists a name twice", "list each name once")
        return tuple(value)

    def whole_number(self, value: Any, field: str, minimum: int = 1, maximum: int = 100_000) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            shown = value if not isinstance(value, int) or abs(value) < 10**12 else f"{str(value)[:12]}…"
            raise self.error(field, f"{shown!r} is not a whole number from {minimum} to {maximum}",
                             f"set it to a whole number from {minimum} to {maximum}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(field, f"{value!r} is not true or false", f"write `{field}: true` or `{field}: false`")
        return value

    def mapping(self, value: Any, field: str, example: str) -> dict[Any, Any]:
        """An optional mapping: absent or null is empty, anything else but a mapping is refused."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.error(field, "must be a mapping", f"write `{field}: {example}`")
        return value

    def variables(self, value: Any, field: str, name_pattern: re.Pattern[str]) -> tuple[tuple[str, str], ...]:
        """Environment-like pairs (`params`, `env`): names matching name_pattern; strings, numbers or booleans."""
        pairs = []
        for key, item in self.mapping(value, field, "{KEY: value}").items():
            if not isinstance(key, str) or not name_pattern.match(key):
                raise self.error(field, f"{key!r} is not a variable name",
                                 "use letters, digits and '_', not starting with a digit (e.g. WORDFREQ_BYTES)")
            if isinstance(item, (dict, list)) or not isinstance(item, (str, int, float, bool)):
                raise self.error(f"{field}.{field_name(key)}", f"{item!r} is not a string, number or boolean",
                                 f'write a single value, quoted if need be: `{key}: "..."`')
            problem = env_problem(key, str(item))
            if problem is not None:
                raise self.error(f"{field}.{field_name(key)}", problem,
                                 "rename it, or drop it (imagekit sets the system's and its own variables)")
            pairs.append((key, str(item)))
        return tuple(sorted(pairs))

    def path_inside(self, value: str, field: str, root: Path, what: str) -> Path:
        """value, a relative path, resolved under root; refused if it is absolute or leads outside root."""
        if not value or "\0" in value:
            raise self.error(field, f"{value!r} is not a path", f"write a path relative to {what}")
        if Path(value).is_absolute():
            raise self.error(field, f"{value!r} is an absolute path", f"write a path relative to {what}")
        try:
            resolved = (root / value).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise self.error(field, f"{value!r} cannot be resolved ({exc})", "fix the path or its symlinks") from None
        if not resolved.is_relative_to(root):
            raise self.error(field, f"{value!r} leads outside {what} ({root})", f"move it into {what}")
        return resolved
