"""Kubernetes quantities: the grammar as Kubernetes reads it, exact values, refusals with the
spelling that was meant, and sizes printed back as Kubernetes prints them. In-process."""
from __future__ import annotations

from fractions import Fraction

import pytest

from imagekit_core.errors import SpecError, UsageError
from imagekit_core.spec.quantity import (
    QuantityError,
    bytes_of,
    format_bytes,
    format_decimal,
    human_size,
    parse_bytes,
    parse_cpus,
    parse_quantity,
)

Ki, Mi, Gi = 2**10, 2**20, 2**30

GRAMMAR = [
    ("0", 0), ("42", 42), ("+42", 42), ("-42", -42),
    ("1.5", Fraction(3, 2)), (".5", Fraction(1, 2)), ("1.", 1),
    ("100m", Fraction(1, 10)), ("500m", Fraction(1, 2)), ("1n", Fraction(1, 10**9)), ("1u", Fraction(1, 10**6)),
    ("1k", 1000), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
    ("1Ki", Ki), ("512Mi", 512 * Mi), ("1Gi", Gi), ("1.5Gi", 3 * Gi // 2), ("1Ti", 2**40), ("1Pi", 2**50), ("1Ei", 2**60),
    ("1e3", 1000), ("1E3", 1000), ("1e+3", 1000), ("5e-1", Fraction(1, 2)), ("1.5e2", 150),
    (4096, 4096), (2.5, Fraction(5, 2)), (1e9, 10**9),
]


@pytest.mark.parametrize(("text", "value"), GRAMMAR, ids=[str(t) for t, _ in GRAMMAR])
def test_quantity_grammar(text, value):
    assert parse_quantity(text) == value


NOT_QUANTITIES = ["", "Gi", "abc", " 1Gi", "1Gi ", "1 Gi", "1..5", "--1", "1e", "1e1.5", "0x10", True, None, [1],
                  float("nan"), float("inf"), "1e99999"]


@pytest.mark.parametrize("text", NOT_QUANTITIES, ids=[repr(t) for t in NOT_QUANTITIES])
def test_not_quantities_are_refused(text):
    with pytest.raises(QuantityError) as refused:
        parse_quantity(text)
    assert refused.value.fix


# What people write for units Kubernetes spells differently, and the fix that names the spelling.
LOOSE_UNITS = [
    ("1GB", "1G (powers of 1000) or 1Gi (powers of 1024)"),
    ("1gb", "1G (powers of 1000) or 1Gi (powers of 1024)"),
    ("1g", "1G (powers of 1000) or 1Gi (powers of 1024)"),
    ("1K", "1k (powers of 1000) or 1Ki (powers of 1024)"),
    ("1kb", "1k (powers of 1000) or 1Ki (powers of 1024)"),
    ("2mb", "2M (powers of 1000) or 2Mi (powers of 1024)"),
    ("1MiB", "write 1Mi"),
    ("1gi", "write 1Gi"),
]


@pytest.mark.parametrize(("text", "fix"), LOOSE_UNITS, ids=[t for t, _ in LOOSE_UNITS])
def test_units_kubernetes_does_not_know_are_refused_with_the_one_meant(text, fix):
    with pytest.raises(QuantityError) as refused:
        parse_quantity(text)
    assert fix in refused.value.fix
    assert "Kubernetes does not know" in refused.value.problem


def test_512m_of_shm_is_milli_not_mebi_and_the_fix_names_512Mi():
    with pytest.raises(SpecError) as refused:
        parse_bytes("512m", file="pipeline.yaml", field="shm")
    message = str(refused.value)
    assert message.startswith("pipeline.yaml: shm: '512m' is 0.512 bytes")
    assert "milli" in message and "512Mi" in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["0", "-1Gi", "0.5", "1500m", "100n", 0, -4])
def test_byte_sizes_are_whole_and_positive(text):
    with pytest.raises(QuantityError):
        bytes_of(text)


@pytest.mark.parametrize(("text", "size"), [("1Gi", Gi), ("1.5Gi", 3 * Gi // 2), ("100M", 10**8), ("1000m", 1),
                                            ("1e3", 1000), (4096, 4096), ("8Mi", 8 * Mi)])
def test_byte_sizes(text, size):
    assert parse_bytes(text, file="p.yaml", field="shm") == size


def test_a_flag_names_itself_instead_of_a_file():
    with pytest.raises(UsageError) as refused:
        parse_bytes("1gb", file=None, field="--memory-limit")
    assert str(refused.value).startswith("--memory-limit '1gb' has the unit 'gb'")
    assert "1Gi" in str(refused.value)


@pytest.mark.parametrize(("text", "cores"), [("500m", Fraction(1, 2)), ("2", 2), ("0.5", Fraction(1, 2)), (1, 1),
                                             ("250m", Fraction(1, 4))])
def test_cpus(text, cores):
    assert parse_cpus(text, file=None, field="limits.cpu") == cores


@pytest.mark.parametrize("text", ["0", "-1", "two", "1 core"])
def test_cpus_refused(text):
    with pytest.raises(UsageError):
        parse_cpus(text, file=None, field="limits.cpu")


FORMATS = [(Gi, "1Gi"), (512 * Mi, "512Mi"), (1536 * Mi, "1536Mi"), (2304 * Mi, "2304Mi"), (Ki, "1Ki"),
           (2**40, "1Ti"), (2**60, "1Ei"), (1536, "1536"), (1000, "1k"), (999, "999"), (0, "0"), (10**9 + 1, "1000000001")]


@pytest.mark.parametrize(("size", "text"), FORMATS, ids=[t for _, t in FORMATS])
def test_bytes_print_as_kubernetes_prints_them_and_read_back(size, text):
    assert format_bytes(size) == text
    assert parse_quantity(format_bytes(size)) == size


@pytest.mark.parametrize("size", [1, 1023, 1024, 1025, 10**6, 3 * Gi // 2, 7 * 2**50, 123456789])
def test_format_round_trip(size):
    assert bytes_of(format_bytes(size)) == size


def test_decimal_form():
    assert [format_decimal(n) for n in (0, 1000, 1500, 2 * 10**6, 3 * 10**18)] == ["0", "1k", "1500", "2M", "3E"]


def test_human_size_is_for_people_only():
    assert [human_size(n) for n in (512, Gi, 3 * Gi // 2, 64 * Mi)] == ["512 B", "1.0 GiB", "1.5 GiB", "64.0 MiB"]
