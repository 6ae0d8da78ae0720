"""Typed checks of wire values against DeviceModel properties (table-driven, no I/O)."""

from __future__ import annotations

import pytest

from twin.errors import ForbiddenKey, OutOfRange, ReadOnlyProperty, TypeMismatch
from twin.models import PropertyType
from twin.values import PropertySchema, check_key, check_value_chars

INT = PropertySchema("n", PropertyType.INT, minimum=-10, maximum=100)
FLOAT = PropertySchema("f", PropertyType.FLOAT, minimum=0.5, maximum=1.5)
DOUBLE = PropertySchema("d", PropertyType.DOUBLE)
BOOL = PropertySchema("b", PropertyType.BOOLEAN)
STRING = PropertySchema("s", PropertyType.STRING)
READ_ONLY = PropertySchema("r", PropertyType.INT, read_only=True)

ACCEPTED = [
    (INT, "42", 42),
    (INT, "-10", -10),
    (INT, "+7", 7),
    (INT, "100", 100),
    (FLOAT, "1.25", 1.25),
    (FLOAT, "5e-1", 0.5),
    (DOUBLE, "-1e300", -1e300),
    (DOUBLE, "inf", float("inf")),
    (BOOL, "true", True),
    (BOOL, "FALSE", False),
    (BOOL, "1", True),
    (BOOL, "0", False),
    (BOOL, "ON", True),
    (BOOL, "off", False),
    (STRING, "anything-at-all", "anything-at-all"),
]

REFUSED = [
    (INT, "abc", TypeMismatch, "'abc' is not an integer"),
    (INT, "1.5", TypeMismatch, "not an integer"),
    (INT, "", TypeMismatch, "not an integer"),
    (INT, "101", OutOfRange, "above the maximum 100"),
    (INT, "-11", OutOfRange, "below the minimum -10"),
    (FLOAT, "x1", TypeMismatch, "not a number"),
    (FLOAT, "0.4", OutOfRange, "below the minimum 0.5"),
    (FLOAT, "1.51", OutOfRange, "above the maximum 1.5"),
    (DOUBLE, "nan", OutOfRange, "NaN"),
    (BOOL, "yes", TypeMismatch, "not true or false"),
    (READ_ONLY, "1", ReadOnlyProperty, "ReadOnly"),
]


@pytest.mark.parametrize(("schema", "text", "expected"), ACCEPTED)
def test_desired_values_of_the_right_type_are_accepted(
    schema: PropertySchema, text: str, expected: object
) -> None:
    assert schema.check_desired(text) == expected


@pytest.mark.parametrize(("schema", "text", "error", "reason"), REFUSED)
def test_desired_values_are_refused_with_a_reason(
    schema: PropertySchema, text: str, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        schema.check_desired(text)


@pytest.mark.parametrize(
    ("schema", "left", "right", "same"),
    [
        (FLOAT, "21", "21.0", True),
        (FLOAT, "21", "21.5", False),
        (INT, "07", "7", True),
        (BOOL, "true", "1", True),
        (BOOL, "true", "false", False),
        (STRING, "on", "ON", False),
        (INT, "abc", "abc", True),
        (INT, "abc", "7", False),
    ],
)
def test_values_compare_by_their_typed_meaning(
    schema: PropertySchema, left: str, right: str, same: bool
) -> None:
    assert schema.same(left, right) is same


@pytest.mark.parametrize("key", ["temp", "a.b", "x-1_y", "ns/name", "k@#:,", "a" * 128])
def test_kubeedge_keys_are_accepted(key: str) -> None:
    check_key(key)


@pytest.mark.parametrize("key", ["", "with space", "ümlaut", "a" * 129, "semi;colon", "tab\t"])
def test_keys_outside_kubeedge_rules_are_refused(key: str) -> None:
    with pytest.raises(ForbiddenKey):
        check_key(key)


@pytest.mark.parametrize("value", ["a b", "x" * 513, "new\nline", "quote'"])
def test_values_outside_kubeedge_rules_are_refused(value: str) -> None:
    with pytest.raises(ForbiddenKey, match="property 'p'"):
        check_value_chars("p", value)


def test_empty_value_passes_the_character_rules() -> None:
    check_value_chars("p", "")
