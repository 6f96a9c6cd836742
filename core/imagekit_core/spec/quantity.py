"""Kubernetes quantities (`resource.Quantity`), read and written in Kubernetes' own grammar.

    quantity  ::= [+|-] number [suffix]
    number    ::= digits | digits "." [digits] | "." digits
    suffix    ::= binary | decimal | exponent
    binary    ::= Ki | Mi | Gi | Ti | Pi | Ei                (powers of 1024)
    decimal   ::= n | u | m | "" | k | M | G | T | P | E     (powers of 1000; `m` is milli)
    exponent  ::= (e | E) [+|-] digits                       (1e3 = 1000)

Values are exact (`Fraction`): `1.5Gi` is 1610612736 bytes, `100m` is a tenth of a CPU.
Byte sizes must come out as a whole, positive number of bytes, so `shm: 512m` (0.512
bytes) is refused with a fix naming `512Mi`; spellings Kubernetes refuses, such as `1GB`,
`1gb` or `1K`, are refused with the spelling it accepts. Every size and CPU count in
imagekit (pipeline `shm`, deploy flags, manifests) is parsed here and nowhere else.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from imagekit_core.errors import SpecError, UsageError

DECIMAL_EXPONENTS = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
MAX_EXPONENT = 64  # far beyond any size or CPU count; keeps `1e999999999` from being computed
BINARY_EXPONENTS = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>.*)", re.DOTALL)
_EXPONENT = re.compile(r"[eE](?P<power>[+-]?[0-9]+)")
# What people write for units Kubernetes spells differently: 1GB, 1gb, 1K, 1MiB.
_LOOSE_UNIT = re.compile(r"(?P<letter>[kKmMgGtTpPE])(?P<binary>[iI]?)[bB]?")
_HUMAN_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity, or not one of the kind asked for."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} (fix: {fix})")


def _suggestion(number: str, suffix: str) -> str:
    """The spelling Kubernetes accepts for a unit it refuses, e.g. `1G or 1Gi` for `1GB`."""
    loose = _LOOSE_UNIT.fullmatch(suffix)
    if loose is None:
        return f"use a quantity such as {number}Mi or {number}Gi"
    letter = loose.group("letter").upper()
    decimal = f"{number}{'k' if letter == 'K' else letter}"
    binary = f"{number}{letter}i"
    if loose.group("binary"):
        return f"write {binary}"
    return f"write {decimal} (powers of 1000) or {binary} (powers of 1024)"


def parse_quantity(value: Any) -> Fraction:
    """A Kubernetes quantity (`1Gi`, `500m`, `1e3`, or a YAML number) as an exact number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise QuantityError(f"{value!r} is not a quantity", "use a quantity such as 512Mi, 1Gi or 500m")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"{value!r} is not a quantity", "use a quantity such as 512Mi, 1Gi or 500m")
        return Fraction(repr(value))
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise QuantityError(f"{value!r} is not a quantity", "use a quantity such as 512Mi, 1Gi or 500m")
    sign, number, suffix = match.group("sign", "number", "suffix")
    amount = Fraction(number.rstrip(".") or "0") * (-1 if sign == "-" else 1)
    exponent = _EXPONENT.fullmatch(suffix)
    if suffix in BINARY_EXPONENTS:
        return amount * (1 << BINARY_EXPONENTS[suffix])
    if suffix in DECIMAL_EXPONENTS:
        return amount * Fraction(10) ** DECIMAL_EXPONENTS[suffix]
    if exponent is not None:
        power = int(exponent.group("power"))
        if abs(power) > MAX_EXPONENT:
            raise QuantityError(f"{value!r} is out of range", f"keep the exponent within ±{MAX_EXPONENT}")
        return amount * Fraction(10) ** power
    raise QuantityError(f"{value!r} has the unit {suffix!r}, which Kubernetes does not know",
                        _suggestion(f"{sign}{number}", suffix))


def _fail(file: Path | str | None, field: str, error: QuantityError) -> SpecError | UsageError:
    """A pipeline field names its file; a command-line flag (file None) names itself."""
    if file is None:
        return UsageError(f"{field} {error.problem} (fix: {error.fix})")
    return SpecError(file, field, error.problem, error.fix)


def bytes_of(value: Any) -> int:
    """A quantity that is a whole, positive number of bytes; QuantityError otherwise."""
    amount = parse_quantity(value)
    if amount.denominator != 1:
        text = str(value)
        if isinstance(value, str) and text.endswith("m"):
            number = text[:-1]
            raise QuantityError(f"{text!r} is {float(amount):g} bytes: the suffix m means milli (1/1000)",
                                f"write {number}Mi for mebibytes or {number}M for megabytes")
        raise QuantityError(f"{text!r} is not a whole number of bytes", "use a quantity such as 512Mi or 1Gi")
    if amount <= 0:
        raise QuantityError(f"{str(value)!r} is not a positive size", "use a quantity such as 512Mi or 1Gi")
    return int(amount)


def parse_bytes(value: Any, *, file: Path | str | None, field: str) -> int:
    """A byte size: SpecError naming file and field, or UsageError naming the flag when file is None."""
    try:
        return bytes_of(value)
    except QuantityError as error:
        raise _fail(file, field, error) from None


def parse_cpus(value: Any, *, file: Path | str | None, field: str) -> Fraction:
    """A positive CPU quantity in cores: `500m` is 1/2, `2` is 2, `0.5` is 1/2."""
    try:
        cores = parse_quantity(value)
        if cores <= 0:
            raise QuantityError(f"{str(value)!r} is not a positive CPU count", "use cores such as 2, 0.5 or 500m")
    except QuantityError as error:
        raise _fail(file, field, error) from None
    return cores


def format_bytes(size: int) -> str:
    """Bytes as Kubernetes prints a binary quantity: the largest exact binary suffix (`1Gi`,
    `1536Mi`), plain digits when none divides it, and the decimal form below 1024 (`1k`)."""
    if -1024 < size < 1024:
        return format_decimal(size)
    for suffix, power in sorted(BINARY_EXPONENTS.items(), key=lambda item: -item[1]):
        if size % 2**power == 0:
            return f"{size >> power}{suffix}"
    return str(size)


def format_cpus(cores: Fraction) -> str:
    """CPUs as Kubernetes writes them: `2` for whole cores, else millicores (`500m`, rounded up to 1m)."""
    if cores.denominator == 1:
        return str(cores.numerator)
    return f"{math.ceil(cores * 1000)}m"


def format_decimal(number: int) -> str:
    """An integer in Kubernetes' decimal form: `1k`, `1500`, `2M`."""
    if number == 0:
        return "0"
    for suffix, power in sorted(DECIMAL_EXPONENTS.items(), key=lambda item: -item[1]):
        if power > 0 and number % 10**power == 0:
            return f"{number // 10**power}{suffix}"
    return str(number)


def human_size(size: int) -> str:
    """Bytes for people reading a summary (not for manifests): `1.5 GiB`, `64.0 MiB`, `512 B`."""
    value = float(size)
    for unit in _HUMAN_UNITS:
        if abs(value) < 1024 or unit == _HUMAN_UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
