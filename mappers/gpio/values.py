"""Pin states to twin values and back: on/off levels and PWM duty cycles, by DeviceModel type.

Pure functions, no gpiozero. A level (on/off) is ``true``/``false`` in a BOOLEAN, ``ON``/``OFF`` in a
STRING (what KubeEdge's LED and traffic-light demos write), 1/0 in an INT and 1.0/0.0 in a
FLOAT. A PWM duty cycle is 0..1 in a FLOAT or DOUBLE and a percentage 0..100 in an INT.
"""

from __future__ import annotations

from twin.errors import OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value

__all__ = ["describe_duty", "describe_level", "duty_value", "level_value", "parse_duty", "parse_level"]

_ON = frozenset({"on", "true", "1", "high", "yes"})
_OFF = frozenset({"off", "false", "0", "low", "no"})


def level_value(level: bool, ptype: PropertyType) -> Value:
    """The twin value of an on/off pin for a property of type ``ptype``."""
    match ptype:
        case PropertyType.BOOLEAN:
            return level
        case PropertyType.INT:
            return int(level)
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            return float(level)
        case _:
            return describe_level(level)


def parse_level(value: Value, ptype: PropertyType) -> bool:
    """On or off from a desired value; ``TypeMismatch`` for anything else (``"dim"``, 2)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        if value in (0, 1):
            return bool(value)
        raise TypeMismatch(f"{value!r} is not on or off: use 1 or 0")
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _ON:
            return True
        if lowered in _OFF:
            return False
    raise TypeMismatch(f"{value!r} is not on or off: use ON/OFF, true/false or 1/0")


def duty_value(duty: float, ptype: PropertyType) -> Value:
    """The twin value of a PWM duty cycle (0..1): a percentage in an INT, else the fraction."""
    if ptype is PropertyType.INT:
        return round(duty * 100)
    # Real PWM hardware reports what it could set (1/256 steps); four decimals read as what was asked.
    return round(duty, 4)


def parse_duty(value: Value, ptype: PropertyType) -> float:
    """A duty cycle 0..1 from a desired value: 0..100 for an INT, 0..1 for a FLOAT/DOUBLE."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeMismatch(f"{value!r} is not a number")
    if ptype is PropertyType.INT:
        if not 0 <= value <= 100:
            raise OutOfRange(f"{value} is not a percentage from 0 to 100")
        return value / 100
    if not 0.0 <= value <= 1.0:
        raise OutOfRange(f"{value} is outside 0..1 (0 is off, 1 is fully on)")
    return float(value)


def describe_level(level: bool) -> str:
    return "ON" if level else "OFF"


def describe_duty(duty: float) -> str:
    return f"at {duty * 100:g}%"
