"""The one value codec: wire strings to typed values and back, per DeviceModel type.

KubeEdge carries every twin value as a string; the DeviceModel property ``type`` says what the
string means. The twin (checking desired and reported values), the mapper SDK (formatting what a
device read, parsing a desired value before it is written) and the DMI server all use the
functions here, so what the twin accepts a mapper can always write, and what a mapper reports the
twin always accepts.

* INT: a decimal integer in the signed 64-bit range (``-12``); device value ``int``; a float
  from a device is rounded half away from zero.
* FLOAT, DOUBLE: decimal or exponent form (``21.5``, ``5e-1``), ``NaN``, ``Inf``, ``-Inf``; device
  value ``float``, formatted as the shortest text that reads back exactly (``21.5``, ``1.5e20``).
* BOOLEAN: ``true false on off 1 0`` in any case; device value ``bool``, formatted ``true``/``false``.
* STRING: any text, as is. STREAM: any text, reported only.
* BYTES: hexadecimal with an even number of digits; device value ``bytes``, formatted in lower case.

Every non-empty value must also pass KubeEdge's character rule (``VALUE_PATTERN``: at most 512 of
``a-z A-Z 0-9 - _ . , : / @ #``, so no spaces). An empty value is valid for STRING and BYTES only.
A desired value must in addition be finite, within ``minimum``/``maximum`` and for a ReadWrite
property; reported values are checked for type only (the device is the source of truth, so a
sensor's ``NaN`` or a reading past the model's maximum is recorded as it is).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from twin.errors import ForbiddenKey, OutOfRange, ReadOnlyProperty, TypeMismatch
from twin.models import AccessMode, DeviceModel, ModelProperty, PropertyType

__all__ = [
    "KEY_PATTERN",
    "VALUE_PATTERN",
    "PropertySchema",
    "Value",
    "check_key",
    "check_value_chars",
    "format_value",
    "parse_value",
]

# KubeEdge's rules (edge/pkg/devicetwin/dtcommon/util.go): keys up to 128, values up to 512
# characters, no spaces.
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.,:/@#]{1,128}$")
VALUE_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.,:/@#]{1,512}$")

#: A value as a device gives it or takes it.
Value = bool | int | float | str | bytes

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_SPECIAL_FLOAT = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_SPECIAL_FLOAT |= {"infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf}
_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*$")
# "on"/"off" too: KubeEdge's LED samples and YAML 1.1 (which kubectl speaks) use them for switches.
_TRUE = frozenset({"true", "1", "on"})
_FALSE = frozenset({"false", "0", "off"})
_INT64 = (-(2**63), 2**63 - 1)


def check_key(key: str) -> None:
    if not KEY_PATTERN.fullmatch(key):
        raise ForbiddenKey(
            f"twin key {key[:140]!r} is not allowed: use 1-128 of the characters a-z A-Z 0-9 - _ . , : / @ #"
        )


def check_value_chars(name: str, value: str) -> None:
    if value and not VALUE_PATTERN.fullmatch(value):
        raise ForbiddenKey(
            f"value {value[:60]!r} for property {name!r} is not allowed: use at most 512 of the "
            "characters a-z A-Z 0-9 - _ . , : / @ # (no spaces)"
        )


def parse_value(text: str, ptype: PropertyType) -> Value:
    """The typed value of a wire string; ``TypeMismatch`` (naming the type) if it is not one."""
    match ptype:
        case PropertyType.INT:
            if not _INT.fullmatch(text):
                raise TypeMismatch(f"{text[:60]!r} is not an integer")
            number = int(text)
            if not _INT64[0] <= number <= _INT64[1]:
                raise TypeMismatch(f"{text[:60]} is outside the 64-bit integer range of an INT")
            return number
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            if _FLOAT.fullmatch(text):
                return float(text)
            special = _SPECIAL_FLOAT.get(text.lower())
            if special is None:
                raise TypeMismatch(f"{text[:60]!r} is not a number")
            return special
        case PropertyType.BOOLEAN:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise TypeMismatch(f"{text[:60]!r} is not a boolean (true/false, on/off, 1/0)")
        case PropertyType.BYTES:
            if not _HEX.fullmatch(text):
                raise TypeMismatch(f"{text[:60]!r} is not hexadecimal bytes (an even number of hex digits)")
            return bytes.fromhex(text)
        case _:
            return text


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # also turns -0.0 into "0"
    # repr is the shortest text that reads back to the same float; KubeEdge's value rule has no "+".
    return repr(value).replace("e+", "e")


def _format(value: Value, ptype: PropertyType) -> str:
    match ptype:
        case PropertyType.INT:
            if isinstance(value, float):
                if not math.isfinite(value):
                    raise TypeMismatch(f"{_format_float(value)} is not an integer")
                value = math.floor(abs(value) + 0.5) * (1 if value >= 0 else -1)
            elif isinstance(value, str | bytes):
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                value = parse_value(text, ptype)
                assert isinstance(value, int)
            if not _INT64[0] <= int(value) <= _INT64[1]:
                raise TypeMismatch(f"{value} is outside the 64-bit integer range of an INT")
            return str(int(value))
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            if isinstance(value, str):
                value = parse_value(value, ptype)
            if isinstance(value, bytes):
                raise TypeMismatch(f"bytes {value[:16].hex()} are not a number")
            return _format_float(float(value))
        case PropertyType.BOOLEAN:
            if isinstance(value, str):
                value = parse_value(value, ptype)
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, int | float) and value in (0, 1):
                return "true" if value else "false"
            raise TypeMismatch(f"{value!r} is not a boolean")
        case PropertyType.BYTES:
            if isinstance(value, bytes):
                return value.hex()
            if isinstance(value, str):
                parse_value(value, ptype)
                return value.lower()
            raise TypeMismatch(f"{value!r} is not bytes")
        case _:
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float):
                return _format_float(value)
            if isinstance(value, bytes):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    raise TypeMismatch(f"bytes {value[:16].hex()} are not UTF-8 text") from None
            return str(value)


def format_value(value: Value, ptype: PropertyType = PropertyType.STRING) -> str:
    """The wire string for a value a device gave, as the twin will accept it for ``ptype``.

    ``TypeMismatch`` when the value cannot be one of ``ptype`` (``NaN`` for an INT, text for a
    FLOAT), ``ForbiddenKey`` when the text breaks KubeEdge's character rule (a STRING with spaces).
    """
    text = _format(value, ptype)
    if text and not VALUE_PATTERN.fullmatch(text):
        raise ForbiddenKey(
            f"{text[:60]!r} cannot be a twin value: KubeEdge allows at most 512 of the characters "
            "a-z A-Z 0-9 - _ . , : / @ # (no spaces)"
        )
    return text


@dataclass(frozen=True, slots=True)
class PropertySchema:
    """What the DeviceModel says about one property, ready to check values against."""

    name: str
    type: PropertyType = PropertyType.STRING
    read_only: bool = False
    minimum: float | None = None
    maximum: float | None = None

    @classmethod
    def from_model(cls, prop: ModelProperty, *, model: DeviceModel | None = None) -> PropertySchema:
        where = f"DeviceModel {model.key}" if model is not None else "DeviceModel"
        return cls(
            name=prop.name,
            type=prop.type,
            read_only=prop.accessMode == AccessMode.READ_ONLY,
            minimum=_bound(prop.minimum, f"{where}: property {prop.name!r}: minimum"),
            maximum=_bound(prop.maximum, f"{where}: property {prop.name!r}: maximum"),
        )

    @property
    def numeric(self) -> bool:
        return self.type in (PropertyType.INT, PropertyType.FLOAT, PropertyType.DOUBLE)

    def parse(self, value: str) -> Value:
        """The typed value of a wire string; ``TypeMismatch`` naming the property and its type."""
        try:
            return parse_value(value, self.type)
        except TypeMismatch as exc:
            raise TypeMismatch(f"property {self.name!r} is a {self.type.value}: {exc}") from None

    def check_reported(self, value: str) -> Value:
        """What a reported value must pass: KubeEdge's characters and the property's type."""
        check_value_chars(self.name, value)
        return self.parse(value)

    def check_desired(self, value: str) -> Value:
        """Everything a desired value must pass: writable, typed, finite, within bounds."""
        if self.read_only or self.type is PropertyType.STREAM:
            raise ReadOnlyProperty(f"property {self.name!r} is ReadOnly and takes no desired value")
        check_value_chars(self.name, value)
        typed = self.parse(value)
        if isinstance(typed, int | float) and not isinstance(typed, bool):
            if isinstance(typed, float) and not math.isfinite(typed):
                raise OutOfRange(f"property {self.name!r}: {value} is not a finite number")
            if self.minimum is not None and typed < self.minimum:
                raise OutOfRange(f"property {self.name!r}: {value} is below the minimum {_fmt(self.minimum)}")
            if self.maximum is not None and typed > self.maximum:
                raise OutOfRange(f"property {self.name!r}: {value} is above the maximum {_fmt(self.maximum)}")
        return typed

    def same(self, left: str, right: str) -> bool:
        """Whether two wire strings mean the same value (``"21"`` and ``"21.0"`` for a FLOAT)."""
        if left == right:
            return True
        try:
            return self.parse(left) == self.parse(right)
        except TypeMismatch:
            return False


def _bound(text: str | None, where: str) -> float | None:
    if text is None or text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        raise TypeMismatch(f"{where} {text!r} is not a number") from None
    if not math.isfinite(number):
        raise TypeMismatch(f"{where} {text!r} is not a finite number")
    return number


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
