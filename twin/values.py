"""Typed twin values: parsing wire strings against a DeviceModel property, and KubeEdge's key rules.

Values travel as strings (KubeEdge compatibility). Before the twin accepts a desired value it
parses it as the property's type and checks ``minimum``/``maximum`` and ``accessMode``; a bad one
is refused with a reason naming the property and the problem.
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
    "TypedValue",
    "check_key",
    "check_value_chars",
]

# KubeEdge's rules (pkg/util/validation in edgecore): keys up to 128, values up to 512 characters,
# no spaces.
KEY_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.,:/@#]{1,128}$")
VALUE_PATTERN = re.compile(r"^[a-zA-Z0-9\-_.,:/@#]{1,512}$")

TypedValue = int | float | bool | str

# "on"/"off" too: KubeEdge's LED samples and YAML 1.1 (which kubectl speaks) use them for switches.
_TRUE = frozenset({"true", "1", "on"})
_FALSE = frozenset({"false", "0", "off"})
_INT = re.compile(r"^[+-]?\d+$")


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

    def parse(self, value: str) -> TypedValue:
        """The typed value of a wire string; ``TypeMismatch`` if it is not of this property's type."""
        if self.type == PropertyType.INT:
            if not _INT.fullmatch(value):
                raise TypeMismatch(f"property {self.name!r} is an INT: {value[:60]!r} is not an integer")
            return int(value)
        if self.type in (PropertyType.FLOAT, PropertyType.DOUBLE):
            try:
                number = float(value)
            except ValueError:
                raise TypeMismatch(
                    f"property {self.name!r} is a {self.type.value}: {value[:60]!r} is not a number"
                ) from None
            return number
        if self.type == PropertyType.BOOLEAN:
            lowered = value.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise TypeMismatch(f"property {self.name!r} is a BOOLEAN: {value[:60]!r} is not true or false")
        return value

    def check_desired(self, value: str) -> TypedValue:
        """Everything a desired value must pass: writable, typed, within bounds."""
        if self.read_only:
            raise ReadOnlyProperty(f"property {self.name!r} is ReadOnly and takes no desired value")
        typed = self.parse(value)
        if isinstance(typed, int | float) and not isinstance(typed, bool):
            if isinstance(typed, float) and math.isnan(typed):
                raise OutOfRange(f"property {self.name!r}: NaN is not a desired value")
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
        return float(text)
    except ValueError:
        raise TypeMismatch(f"{where} {text!r} is not a number") from None


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
