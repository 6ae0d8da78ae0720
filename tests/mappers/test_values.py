"""Device values to twin strings and desired strings to device values, by DeviceModel type."""

from __future__ import annotations

import math

import pytest

from mappers.values import Value, from_wire, to_wire
from twin.errors import TypeMismatch
from twin.models import PropertyType as T


@pytest.mark.parametrize(
    ("value", "ptype", "wire"),
    [
        (True, T.BOOLEAN, "true"),
        (False, T.BOOLEAN, "false"),
        (42, T.INT, "42"),
        (-7, T.INT, "-7"),
        (21.5, T.FLOAT, "21.5"),
        (22.0, T.FLOAT, "22"),
        (-0.0, T.FLOAT, "0"),
        (1.5e20, T.DOUBLE, "1.5e20"),
        (1e-05, T.DOUBLE, "1e-05"),
        (math.nan, T.FLOAT, "NaN"),
        (math.inf, T.FLOAT, "Inf"),
        (-math.inf, T.DOUBLE, "-Inf"),
        (3.0, T.INT, "3"),
        ("idle", T.STRING, "idle"),
        (b"\x01\xab", T.BYTES, "01ab"),
    ],
)
def test_device_values_become_kubeedge_wire_strings(value: Value, ptype: T, wire: str) -> None:
    assert to_wire(value, ptype) == wire


@pytest.mark.parametrize(
    ("text", "ptype", "value"),
    [
        ("42", T.INT, 42),
        ("-3", T.INT, -3),
        ("0x10", T.INT, 16),
        ("7.0", T.INT, 7),
        ("21.5", T.FLOAT, 21.5),
        ("1e3", T.DOUBLE, 1000.0),
        ("on", T.BOOLEAN, True),
        ("TRUE", T.BOOLEAN, True),
        ("1", T.BOOLEAN, True),
        ("off", T.BOOLEAN, False),
        ("false", T.BOOLEAN, False),
        ("0", T.BOOLEAN, False),
        ("auto", T.STRING, "auto"),
        ("01ab", T.BYTES, b"\x01\xab"),
    ],
)
def test_desired_strings_are_parsed_by_model_type(text: str, ptype: T, value: Value) -> None:
    parsed = from_wire(text, ptype)
    assert parsed == value
    assert type(parsed) is type(value)


def test_nan_desired_value_parses_as_nan() -> None:
    assert math.isnan(float(from_wire("NaN", T.FLOAT)))


@pytest.mark.parametrize(
    ("text", "ptype"),
    [
        ("abc", T.INT),
        ("7.5", T.INT),
        ("warm", T.FLOAT),
        ("maybe", T.BOOLEAN),
        ("zz", T.BYTES),
        ("x", T.STREAM),
    ],
)
def test_desired_string_that_does_not_fit_the_type_is_a_type_mismatch(text: str, ptype: T) -> None:
    with pytest.raises(TypeMismatch):
        from_wire(text, ptype)
