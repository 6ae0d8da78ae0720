"""The one value codec: parsing, formatting and checking wire values by DeviceModel type (no I/O)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.errors import ForbiddenKey, InvalidValue, OutOfRange, ReadOnlyProperty, TypeMismatch
from twin.models import PropertyType
from twin.models import PropertyType as T
from twin.values import (
    VALUE_PATTERN,
    PropertySchema,
    Value,
    check_key,
    check_value_chars,
    format_value,
    parse_value,
)

INT = PropertySchema("n", PropertyType.INT, minimum=-10, maximum=100)
FLOAT = PropertySchema("f", PropertyType.FLOAT, minimum=0.5, maximum=1.5)
DOUBLE = PropertySchema("d", PropertyType.DOUBLE)
BOOL = PropertySchema("b", PropertyType.BOOLEAN)
STRING = PropertySchema("s", PropertyType.STRING)
READ_ONLY = PropertySchema("r", PropertyType.INT, read_only=True)

ACCEPTED = [
    (INT, "42", 42),
    (INT, "-10", -10),
    (INT, "100", 100),
    (FLOAT, "1.25", 1.25),
    (FLOAT, "5e-1", 0.5),
    (DOUBLE, "-1e300", -1e300),
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
    (DOUBLE, "nan", OutOfRange, "not a finite number"),
    (DOUBLE, "inf", OutOfRange, "not a finite number"),
    (DOUBLE, "-Infinity", OutOfRange, "not a finite number"),
    (DOUBLE, "1e999", OutOfRange, "not a finite number"),
    (INT, "9223372036854775808", TypeMismatch, "64-bit integer range"),
    (INT, "0x10", TypeMismatch, "not an integer"),
    (INT, "+7", ForbiddenKey, "not allowed"),
    (INT, "7.0", TypeMismatch, "not an integer"),
    (FLOAT, "", TypeMismatch, "not a number"),
    (FLOAT, "1_000", TypeMismatch, "not a number"),
    (BOOL, "", TypeMismatch, "not a boolean"),
    (PropertySchema("x", T.BYTES), "zz", TypeMismatch, "not hexadecimal"),
    (PropertySchema("x", T.BYTES), "abc", TypeMismatch, "not hexadecimal"),
    (PropertySchema("x", T.STREAM), "x", ReadOnlyProperty, "ReadOnly"),
    (STRING, "with space", ForbiddenKey, "no spaces"),
    (BOOL, "yes", TypeMismatch, "not a boolean"),
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


def test_reported_values_are_type_checked_but_not_range_checked() -> None:
    assert INT.check_reported("1000") == 1000
    assert math.isnan(float(DOUBLE.check_reported("NaN")))  # a sensor may report NaN
    assert READ_ONLY.check_reported("5") == 5
    for schema, text in [(INT, ""), (INT, "1.5"), (INT, "-9223372036854775809"), (BOOL, "maybe")]:
        with pytest.raises(TypeMismatch):
            schema.check_reported(text)


@pytest.mark.parametrize(
    ("value", "ptype", "wire"),
    [
        (True, T.BOOLEAN, "true"),
        (False, T.BOOLEAN, "false"),
        (1, T.BOOLEAN, "true"),
        (42, T.INT, "42"),
        (-7, T.INT, "-7"),
        (3.0, T.INT, "3"),
        (21.7, T.INT, "22"),
        (-2.5, T.INT, "-3"),
        (True, T.INT, "1"),
        ("12", T.INT, "12"),
        (21.5, T.FLOAT, "21.5"),
        (22.0, T.FLOAT, "22"),
        (-0.0, T.FLOAT, "0"),
        (1.5e20, T.DOUBLE, "1.5e20"),
        (1e-05, T.DOUBLE, "1e-05"),
        (math.nan, T.FLOAT, "NaN"),
        (math.inf, T.FLOAT, "Inf"),
        (-math.inf, T.DOUBLE, "-Inf"),
        ("idle", T.STRING, "idle"),
        (b"ok", T.STRING, "ok"),
        (b"\x01\xab", T.BYTES, "01ab"),
        ("01AB", T.BYTES, "01ab"),
    ],
)
def test_device_values_are_formatted_as_the_twin_accepts_them(value: Value, ptype: T, wire: str) -> None:
    assert format_value(value, ptype) == wire
    PropertySchema("p", ptype).check_reported(wire)


@pytest.mark.parametrize(
    ("value", "ptype", "error"),
    [
        (math.nan, T.INT, TypeMismatch),
        (2**63, T.INT, TypeMismatch),
        ("warm", T.FLOAT, TypeMismatch),
        (b"\xff", T.FLOAT, TypeMismatch),
        (2, T.BOOLEAN, TypeMismatch),
        ("zz", T.BYTES, TypeMismatch),
        (b"\xff\xfe", T.STRING, TypeMismatch),
        ("Running OK", T.STRING, ForbiddenKey),
    ],
)
def test_a_device_value_the_twin_cannot_hold_is_a_named_error(value: Value, ptype: T, error: type) -> None:
    with pytest.raises(error):
        format_value(value, ptype)


_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_TEXT = st.text(alphabet="abcXYZ019-_.,:/@#", max_size=40)
_VALUES: dict[T, st.SearchStrategy[Value]] = {
    T.INT: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    T.FLOAT: st.floats(),
    T.DOUBLE: st.floats(),
    T.BOOLEAN: st.booleans(),
    T.STRING: _TEXT,
    T.BYTES: st.binary(max_size=40),
    T.STREAM: _TEXT,
}


@pytest.mark.parametrize("ptype", list(T))
def test_format_then_parse_gives_the_same_value_for_every_type(ptype: T) -> None:
    @given(_VALUES[ptype])
    def round_trip(value: Value) -> None:
        text = format_value(value, ptype)
        back = parse_value(text, ptype)
        if isinstance(value, float) and math.isnan(value):
            assert isinstance(back, float) and math.isnan(back)
        else:
            assert back == value
            assert type(back) is type(value)

    round_trip()


@pytest.mark.parametrize("ptype", [t for t in T if t is not T.STREAM])
def test_every_desired_value_the_twin_accepts_a_mapper_can_write(ptype: T) -> None:
    schema = PropertySchema("p", ptype, minimum=-1e6, maximum=1e6)

    @given(st.text(alphabet="0123456789abcdefABCDEF-+.eEnNiItTrRuUoO", max_size=12))
    def accepted_means_writable(text: str) -> None:
        try:
            typed = schema.check_desired(text)
        except InvalidValue:
            return
        # What a mapper writes is this same typed value; formatting it again is accepted too.
        assert parse_value(format_value(typed, ptype), ptype) == typed
        assert format_value(typed, ptype) == "" or VALUE_PATTERN.fullmatch(format_value(typed, ptype))

    accepted_means_writable()
