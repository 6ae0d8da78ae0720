"""Pin levels and duty cycles to twin values and back, type by type (no gpiozero)."""

from __future__ import annotations

import pytest

from mappers.gpio.values import duty_value, level_value, parse_duty, parse_level
from twin.errors import OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value, format_value

B, S, F, D = PropertyType.BOOLEAN, PropertyType.STRING, PropertyType.FLOAT, PropertyType.DOUBLE
N = PropertyType.INT


@pytest.mark.parametrize(
    ("ptype", "on", "off"),
    [(B, "true", "false"), (S, "ON", "OFF"), (N, "1", "0"), (F, "1", "0"), (D, "1", "0")],
)
def test_a_level_reaches_the_wire_in_the_words_of_its_type(ptype: PropertyType, on: str, off: str) -> None:
    assert format_value(level_value(True, ptype), ptype) == on
    assert format_value(level_value(False, ptype), ptype) == off


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (True, True),
        (False, False),
        ("ON", True),
        ("off", False),
        ("On", True),
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("high", True),
        ("low", False),
        (1, True),
        (0, False),
        (1.0, True),
        (0.0, False),
    ],
)
def test_desired_on_off_values_kubeedge_demos_and_yaml_write(value: Value, level: bool) -> None:
    assert parse_level(value, S) is level


@pytest.mark.parametrize("value", ["dim", "", "2", 2, 0.5, b"\x01"])
def test_anything_but_on_or_off_is_a_type_mismatch(value: Value) -> None:
    with pytest.raises(TypeMismatch):
        parse_level(value, S)


@pytest.mark.parametrize(
    ("ptype", "value", "duty", "wire"),
    [(F, 0.5, 0.5, "0.5"), (D, 1.0, 1.0, "1"), (F, 0, 0.0, "0"), (N, 25, 0.25, "25"), (N, 100, 1.0, "100")],
)
def test_pwm_is_a_fraction_in_a_float_and_a_percentage_in_an_int(
    ptype: PropertyType, value: Value, duty: float, wire: str
) -> None:
    assert parse_duty(value, ptype) == duty
    assert format_value(duty_value(duty, ptype), ptype) == wire


def test_a_duty_cycle_the_hardware_rounded_reads_back_as_asked() -> None:
    assert duty_value(0.30000000000000004, F) == 0.3
    assert duty_value(0.333, N) == 33


@pytest.mark.parametrize(("ptype", "value"), [(F, 1.5), (F, -0.1), (N, 101), (N, -1)])
def test_a_duty_cycle_out_of_range_is_refused(ptype: PropertyType, value: Value) -> None:
    with pytest.raises(OutOfRange):
        parse_duty(value, ptype)


@pytest.mark.parametrize("value", ["half", True, b"\x80"])
def test_a_duty_cycle_that_is_not_a_number_is_a_type_mismatch(value: Value) -> None:
    with pytest.raises(TypeMismatch):
        parse_duty(value, F)
