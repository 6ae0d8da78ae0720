"""BLE characteristic bytes to typed values and back: byte range, byte order, sign, scale.

Pure functions, no bleak, tested table by table. A GATT characteristic is a few bytes; a visitor's
``dataConverter`` (``mappers.ble.config``) says which of them hold the value and how to read them:

- the bytes ``startIndex..endIndex`` (both included; ``length`` instead of ``endIndex``; no end: to
  the end of the data). KubeEdge writes ``startIndex > endIndex`` for bytes stored low byte first;
  edgetwin reads that as the range ``endIndex..startIndex`` in little-endian order;
- as an integer (``byteOrder`` big or little, ``signed``), an IEEE float (2, 4 or 8 bytes), text
  or raw bytes (``dataType``; by default the DeviceModel type decides);
- then, for numbers: ``shiftLeft``/``shiftRight`` on the raw integer, KubeEdge's
  ``orderOfOperations`` (Add, Subtract, Multiply, Divide) in order, then ``x scale + valueOffset``.

Writing inverts each step and refuses a value that does not fit the field (``OutOfRange``).
KubeEdge's own mapper joins the *decimal text* of the bytes ([0x01, 0x02] reads 12); edgetwin reads
them as one binary number (258), which is what devices mean. A single byte reads the same in both.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from mappers.ble.errors import LayoutMismatch
from twin.errors import OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value

__all__ = ["Kind", "Layout", "Operation", "decode", "encode", "kind_for", "splice"]


class Kind(enum.StrEnum):
    """How the field's bytes are read (the visitor's ``dataType``)."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STRING = "string"
    BYTES = "bytes"

    @classmethod
    def _missing_(cls, value: object) -> Kind | None:
        if isinstance(value, str):
            return _KIND_ALIASES.get(value.strip().lower())
        return None


_KIND_ALIASES = {
    "integer": Kind.INT,
    "uint": Kind.INT,
    "double": Kind.FLOAT,
    "boolean": Kind.BOOL,
    "str": Kind.STRING,
    "text": Kind.STRING,
    "raw": Kind.BYTES,
}


class Operation(enum.StrEnum):
    """KubeEdge's ``orderOfOperations[].operationType``."""

    ADD = "Add"
    SUBTRACT = "Subtract"
    MULTIPLY = "Multiply"
    DIVIDE = "Divide"

    @classmethod
    def _missing_(cls, value: object) -> Operation | None:
        if isinstance(value, str):
            for op in cls:
                if op.value.lower() == value.strip().lower():
                    return op
        return None

    def apply(self, x: float, operand: float) -> float:
        match self:
            case Operation.ADD:
                return x + operand
            case Operation.SUBTRACT:
                return x - operand
            case Operation.MULTIPLY:
                return x * operand
            case Operation.DIVIDE:
                return x / operand

    def undo(self, x: float, operand: float) -> float:
        match self:
            case Operation.ADD:
                return x - operand
            case Operation.SUBTRACT:
                return x + operand
            case Operation.MULTIPLY:
                return x / operand
            case Operation.DIVIDE:
                return x * operand


_FLOAT_FORMATS = {2: "e", 4: "f", 8: "d"}


@dataclass(frozen=True)
class Layout:
    """Where a value sits in a characteristic and how its bytes read."""

    start: int = 0
    end: int | None = None  # included; None: to the end of the data
    little: bool = False
    signed: bool = False
    kind: Kind | None = None  # None: from the DeviceModel type
    shift_left: int = 0
    shift_right: int = 0
    operations: tuple[tuple[Operation, float], ...] = ()
    scale: float = 1.0
    value_offset: float = 0.0
    encoding: str = "utf-8"

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start + 1

    @property
    def ranged(self) -> bool:
        """Whether the layout names a part of the characteristic rather than all of it."""
        return self.start > 0 or self.end is not None

    @property
    def arithmetic(self) -> bool:
        return bool(self.operations) or self.scale != 1.0 or self.value_offset != 0.0

    def describe(self) -> str:
        return f"bytes {self.start}..{'end' if self.end is None else self.end}"


def kind_for(layout: Layout, ptype: PropertyType) -> Kind:
    """The visitor's ``dataType``, or the natural reading for the DeviceModel type."""
    if layout.kind is not None:
        return layout.kind
    match ptype:
        case PropertyType.BOOLEAN:
            return Kind.BOOL
        case PropertyType.STRING:
            return Kind.STRING
        case PropertyType.BYTES | PropertyType.STREAM:
            return Kind.BYTES
        case _:
            return Kind.INT


def _field(data: bytes, layout: Layout, kind: Kind) -> bytes:
    size = len(data)
    if layout.end is not None and layout.end >= size:
        raise LayoutMismatch(f"{layout.describe()} asked for, the characteristic holds {size} byte(s)")
    empty_ok = kind in (Kind.STRING, Kind.BYTES)
    if layout.start > size or (layout.start == size and not empty_ok):
        raise LayoutMismatch(f"{layout.describe()} asked for, the characteristic holds {size} byte(s)")
    return data[layout.start : None if layout.end is None else layout.end + 1]


def _shortest(value: float, fmt: str) -> float:
    """The shortest decimal that packs to the same bits: a float32 21.3 reads 21.3, not 21.2999992."""
    if not math.isfinite(value):
        return value
    packed = struct.pack(fmt, value)
    for digits in range(1, 18):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(fmt, candidate) == packed:
            return candidate
    return value


def _tidy(value: float) -> float:
    # 2150 * 0.01 is 21.500000000000004 in binary floating point; the device meant 21.5.
    return float(f"{value:.15g}") if math.isfinite(value) else value


def _arithmetic(raw: float, layout: Layout) -> float:
    x = float(raw)
    for op, operand in layout.operations:
        x = op.apply(x, operand)
    return _tidy(x * layout.scale + layout.value_offset)


def _number(field: bytes, layout: Layout, kind: Kind) -> int | float:
    order = "<" if layout.little else ">"
    if kind is Kind.FLOAT:
        fmt = _FLOAT_FORMATS.get(len(field))
        if fmt is None:
            raise LayoutMismatch(f"a float takes 2, 4 or 8 bytes, {layout.describe()} holds {len(field)}")
        (value,) = struct.unpack(order + fmt, field)
        number = _shortest(value, order + fmt) if fmt != "d" else float(value)
        return _arithmetic(number, layout) if layout.arithmetic else number
    raw = int.from_bytes(field, "little" if layout.little else "big", signed=layout.signed)
    if layout.shift_left:
        raw <<= layout.shift_left
    elif layout.shift_right:
        raw >>= layout.shift_right
    return _arithmetic(raw, layout) if layout.arithmetic else raw


def decode(data: bytes, layout: Layout, ptype: PropertyType) -> Value:
    """The value of a property in a characteristic's bytes; ``LayoutMismatch`` if they do not fit."""
    kind = kind_for(layout, ptype)
    field = _field(data, layout, kind)
    match kind:
        case Kind.BYTES:
            value: Value = bytes(field)
        case Kind.STRING:
            value = field.split(b"\x00", 1)[0].decode(layout.encoding, errors="replace")
        case Kind.BOOL:
            value = any(field)
        case _:
            value = _number(field, layout, kind)
    return _as_type(value, ptype)


def _as_type(value: Value, ptype: PropertyType) -> Value:
    match ptype:
        case PropertyType.INT if isinstance(value, float):
            if not math.isfinite(value):
                raise TypeMismatch(f"{value} is not an integer")
            return round(value)
        case PropertyType.INT if isinstance(value, bool):
            return int(value)
        case PropertyType.FLOAT | PropertyType.DOUBLE if isinstance(value, int | bool):
            return float(value)
        case PropertyType.BOOLEAN if isinstance(value, int | float):
            return bool(value)
    return value


# -- writing -----------------------------------------------------------------------------------------


def _numeric(value: Value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise TypeMismatch(f"{value!r} is not a number") from None
    raise TypeMismatch(f"{value!r} is not a number")


def _unapply(value: Value, layout: Layout) -> float:
    x = _numeric(value)
    if not layout.arithmetic:
        return x
    x = (x - layout.value_offset) / layout.scale
    for op, operand in reversed(layout.operations):
        x = op.undo(x, operand)
    return x


def _encode_int(value: Value, layout: Layout, size: int) -> bytes:
    x = _unapply(value, layout)
    if layout.shift_left:
        x /= 1 << layout.shift_left
    elif layout.shift_right:
        x *= 1 << layout.shift_right
    if not math.isfinite(x):
        raise OutOfRange(f"{value!r} cannot be written as an integer")
    raw = round(x)
    bits = 8 * size
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if layout.signed else (0, (1 << bits) - 1)
    if not low <= raw <= high:
        sign = "signed" if layout.signed else "unsigned"
        raise OutOfRange(f"{value!r} is {raw} raw, outside {low}..{high} ({size} byte(s), {sign})")
    return raw.to_bytes(size, "little" if layout.little else "big", signed=layout.signed)


def _encode_float(value: Value, layout: Layout, size: int) -> bytes:
    fmt = _FLOAT_FORMATS.get(size)
    if fmt is None:
        raise LayoutMismatch(f"a float takes 2, 4 or 8 bytes, {layout.describe()} holds {size}")
    try:
        return struct.pack(("<" if layout.little else ">") + fmt, _unapply(value, layout))
    except (OverflowError, struct.error):
        raise OutOfRange(f"{value!r} does not fit in a {size}-byte float") from None


def encode(value: Value, layout: Layout, ptype: PropertyType) -> bytes:
    """The field's bytes for a value (already parsed by the DeviceModel type)."""
    kind = kind_for(layout, ptype)
    size = layout.length
    match kind:
        case Kind.BYTES | Kind.STRING:
            if isinstance(value, bytes):
                data = value
            elif kind is Kind.BYTES and isinstance(value, str):
                try:
                    data = bytes.fromhex(value)
                except ValueError:
                    raise TypeMismatch(f"{value!r} is not hexadecimal bytes") from None
            else:
                data = str(value).encode(layout.encoding)
            if size is None:
                return data
            if len(data) > size or (kind is Kind.BYTES and len(data) != size):
                raise OutOfRange(f"{len(data)} byte(s) do not fit {layout.describe()} ({size} byte(s))")
            return data.ljust(size, b"\x00")  # text shorter than its field is padded with NULs
        case Kind.BOOL:
            truth = bool(_numeric(value)) if not isinstance(value, bool) else value
            return int(truth).to_bytes(size or 1, "little" if layout.little else "big")
    if size is None:
        raise LayoutMismatch("writing a number needs dataConverter.endIndex or length (its size in bytes)")
    if kind is Kind.FLOAT:
        return _encode_float(value, layout, size)
    return _encode_int(value, layout, size)


def splice(current: bytes, field: bytes, layout: Layout) -> bytes:
    """``current`` with the field's bytes replaced: writing one value of a multi-value characteristic."""
    if layout.start > len(current):
        raise LayoutMismatch(
            f"cannot write {layout.describe()}: the characteristic holds {len(current)} byte(s)"
        )
    return current[: layout.start] + field + current[layout.start + len(field) :]
