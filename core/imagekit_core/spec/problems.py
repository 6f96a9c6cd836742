"""Every problem of an input, not only the first: the loaders check each field on its own, note what is wrong
and go on with a stand-in value, then raise all the problems at once (at most LIMIT).

    problems = Problems()
    shards = problems.check(lambda: source.whole_number(data.get("shards", 1), "shards"), 1)
    ...
    problems.raise_any()   # SpecProblems: the first problem's line, and how many more there are
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from imagekit_core.errors import SpecError

T = TypeVar("T")
LIMIT = 20


class SpecProblems(SpecError):
    """Several problems of one input; the message is the first one's line and a count of the rest."""

    def __init__(self, problems: list[SpecError]) -> None:
        first = problems[0]
        super().__init__(first.file, first.field, first.problem, first.fix, line=first.line)
        self.problems = tuple(problems)
        if len(problems) > 1:
            self.args = (f"{first} (and {len(problems) - 1} more: `imagekit validate` lists every one)",)


class Problems:
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.found: list[SpecError] = []

    def check(self, parse: Callable[[], T], stand_in: T) -> T:
        """parse()'s value, or stand_in when it fails (its problems noted)."""
        try:
            return parse()
        except SpecProblems as exc:
            self.found.extend(exc.problems)
        except SpecError as exc:
            self.found.append(exc)
        return stand_in

    def raise_any(self) -> None:
        if self.found:
            raise SpecProblems(self.found[:self.limit])


def all_problems(exc: SpecError) -> tuple[SpecError, ...]:
    return exc.problems if isinstance(exc, SpecProblems) else (exc,)
