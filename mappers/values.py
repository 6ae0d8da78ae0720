"""Values between a device and the twin: typed on the device side, strings on the wire.

KubeEdge carries every twin value as a string; the DeviceModel property ``type`` says what the string
means. A plugin returns and accepts plain Python values; this module is the one place that turns
them into wire strings (``to_wire``) and parses a desired string before it is written (``from_wire``),
so every protocol formats ``true``/``21.5``/``NaN`` the same way.
"""

from __future__ import annotations

import math

from twin.errors import TypeMismatch
from twin.models import PropertyType

__all__ = ["Value", "from_wire", "to_wire"]

Value = bool | int | float | str | bytes

_TRUE = frozenset({"true", "1", "on", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "off", "no", "n", "f"})


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value)) if value != 0 or math.copysign(1, value) > 0 else "0"
    # repr is the shortest text that reads back to the same float; KubeEdge's value rule has no "+".
    return repr(value).replace("e+", "e")


def to_wire(value: Value, ptype: PropertyType = PropertyType.STRING) -> str:
    """The twin string for a value read from a device."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if ptype is PropertyType.INT and value.is_integer():
            return str(int(value))
        return _format_float(value)
    return value


def from_wire(text: str, ptype: PropertyType) -> Value:
    """Parse a desired value for a property of type ``ptype``; ``TypeMismatch`` when it does not parse."""
    stripped = text.strip()
    match ptype:
        case PropertyType.INT:
            try:
                return int(stripped, 0) if stripped.lower().startswith(("0x", "-0x")) else int(stripped)
            except ValueError:
                try:
                    number = float(stripped)
                except ValueError:
                    raise TypeMismatch(f"{text!r} is not an integer") from None
                if not number.is_integer():
                    raise TypeMismatch(f"{text!r} is not an integer") from None
                return int(number)
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            try:
                return float(stripped)
            except ValueError:
                raise TypeMismatch(f"{text!r} is not a number") from None
        case PropertyType.BOOLEAN:
            lowered = stripped.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise TypeMismatch(f"{text!r} is not a boolean (true/false, on/off, 1/0)")
        case PropertyType.BYTES:
            try:
                return bytes.fromhex(stripped)
            except ValueError:
                raise TypeMismatch(f"{text!r} is not hexadecimal bytes") from None
        case PropertyType.STREAM:
            raise TypeMismatch("a STREAM property cannot be written")
        case _:
            return text
