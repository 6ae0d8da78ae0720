"""Modbus values to and from registers: data types, byte and word swap, scale and offset.

Pure functions, no pymodbus: the part KubeEdge users most often find wrong, tested table by table.
Registers are 16-bit big-endian words. ``isRegisterSwap`` reverses the order of the registers
(low word first, as many PLCs store 32-bit values) and is applied before ``isSwap``, which swaps the
two bytes inside each register; the result is read as one big-endian number. A numeric value is
``raw * scale + valueOffset``; writing inverts that.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from twin.errors import OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value

__all__ = [
    "GENERIC_TYPES",
    "Codec",
    "DataType",
    "RegisterKind",
    "bytes_to_registers",
    "codec_for",
    "decode",
    "decode_bits",
    "encode",
    "encode_bits",
    "registers_to_bytes",
    "resolve_data_type",
]


class RegisterKind(enum.StrEnum):
    """The four Modbus tables, named as KubeEdge's visitor ``register`` field names them."""

    COIL = "CoilRegister"
    DISCRETE_INPUT = "DiscreteInputRegister"
    INPUT = "InputRegister"
    HOLDING = "HoldingRegister"

    @classmethod
    def _missing_(cls, value: object) -> RegisterKind | None:
        if isinstance(value, str):
            key = value.lower().replace("_", "").replace("-", "").replace(" ", "")
            key = key.removesuffix("register").removesuffix("s")
            return _KIND_ALIASES.get(key)
        return None

    @property
    def is_bits(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)

    @property
    def writable(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.HOLDING)


_KIND_ALIASES = {
    "coil": RegisterKind.COIL,
    "discreteinput": RegisterKind.DISCRETE_INPUT,
    "discrete": RegisterKind.DISCRETE_INPUT,
    "input": RegisterKind.INPUT,
    "holding": RegisterKind.HOLDING,
}


class DataType(enum.StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"
    BYTES = "bytes"

    @classmethod
    def _missing_(cls, value: object) -> DataType | None:
        if isinstance(value, str):
            return _TYPE_ALIASES.get(value.lower())
        return None

    @property
    def registers(self) -> int | None:
        """Registers one value takes; ``None`` when ``limit`` decides (bool, string, bytes)."""
        return _SIZES.get(self)


_TYPE_ALIASES = {
    "boolean": DataType.BOOL,
    "short": DataType.INT16,
    "ushort": DataType.UINT16,
    "long": DataType.INT32,
    "ulong": DataType.UINT32,
    "str": DataType.STRING,
}

#: KubeEdge manifests write ``dataType: int`` / ``float`` and let ``limit`` give the size.
GENERIC_TYPES = frozenset({"int", "integer", "uint", "float", "double"})


def resolve_data_type(name: str | None, limit: int | None) -> DataType | None:
    """An exact type for a visitor's ``dataType``: ``int`` + limit 2 is int32; ``None`` if absent."""
    if name is None:
        return None
    key = name.lower()
    if key not in GENERIC_TYPES:
        return DataType(key)
    size = limit or 0
    if key in ("int", "integer"):
        return {2: DataType.INT32, 4: DataType.INT64}.get(size, DataType.INT16)
    if key == "uint":
        return {2: DataType.UINT32, 4: DataType.UINT64}.get(size, DataType.UINT16)
    # float / double: the size says which; one register is a scaled int16 (215 * 0.1 = 21.5).
    return {1: DataType.INT16, 4: DataType.FLOAT64}.get(
        size, DataType.FLOAT64 if key == "double" and size == 0 else DataType.FLOAT32
    )


_SIZES = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}

_INTS = {
    DataType.INT16: True,
    DataType.INT32: True,
    DataType.INT64: True,
    DataType.UINT16: False,
    DataType.UINT32: False,
    DataType.UINT64: False,
}


@dataclass(frozen=True)
class Codec:
    """How one property's registers become a value."""

    data_type: DataType
    count: int  # registers, or bits for coils / discrete inputs
    scale: float = 1.0
    offset: float = 0.0
    byte_swap: bool = False
    word_swap: bool = False
    encoding: str = "utf-8"

    @property
    def scaled(self) -> bool:
        return self.scale != 1.0 or self.offset != 0.0


def codec_for(
    kind: RegisterKind,
    ptype: PropertyType,
    *,
    data_type: DataType | None = None,
    limit: int | None = None,
    scale: float = 1.0,
    offset: float = 0.0,
    byte_swap: bool = False,
    word_swap: bool = False,
    encoding: str = "utf-8",
) -> Codec:
    """The codec for a visitor: an explicit ``dataType`` wins, else the DeviceModel type and ``limit``.

    Without ``dataType`` (KubeEdge's own visitor has none): INT is int16/int32/int64 by ``limit``
    1/2/4; FLOAT and DOUBLE are float32 (limit 2) or float64 (limit 4), and a single register
    (limit 1) is a signed int16 that ``scale`` turns into a decimal (215 * 0.1 = 21.5).
    """
    if kind.is_bits:
        return Codec(DataType.BOOL, limit or 1)
    if data_type is None:
        data_type = _infer(ptype, limit)
    size = data_type.registers
    count = size if size is not None else (limit or 1)
    return Codec(data_type, count, scale, offset, byte_swap, word_swap, encoding)


def _infer(ptype: PropertyType, limit: int | None) -> DataType:
    match ptype:
        case PropertyType.BOOLEAN:
            return DataType.BOOL
        case PropertyType.INT:
            return {2: DataType.INT32, 4: DataType.INT64}.get(limit or 1, DataType.INT16)
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            default = DataType.FLOAT64 if ptype is PropertyType.DOUBLE else DataType.FLOAT32
            return {1: DataType.INT16, 2: DataType.FLOAT32, 4: DataType.FLOAT64}.get(limit or 0, default)
        case PropertyType.BYTES | PropertyType.STREAM:
            return DataType.BYTES
        case _:
            return DataType.STRING if (limit or 1) > 1 else DataType.UINT16


def registers_to_bytes(
    registers: Sequence[int], *, byte_swap: bool = False, word_swap: bool = False
) -> bytes:
    words = list(reversed(registers)) if word_swap else list(registers)
    data = bytearray()
    for word in words:
        hi, lo = (word >> 8) & 0xFF, word & 0xFF
        data += bytes((lo, hi)) if byte_swap else bytes((hi, lo))
    return bytes(data)


def bytes_to_registers(data: bytes, *, byte_swap: bool = False, word_swap: bool = False) -> list[int]:
    """The inverse of ``registers_to_bytes`` (``data`` has an even length)."""
    words = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        words.append((lo << 8) | hi if byte_swap else (hi << 8) | lo)
    return list(reversed(words)) if word_swap else words


def _decimals(number: float) -> int:
    """Decimal places of a configured factor: 0.1 has 1, 0.25 has 2, 1e-05 has 5."""
    text = repr(float(number))
    mantissa, _, exponent = text.partition("e")
    places = len(mantissa.partition(".")[2].rstrip("0")) - int(exponent or 0)
    return max(places, 0)


def _apply_scale(raw: float, codec: Codec) -> Value:
    if isinstance(raw, int):
        if float(codec.scale).is_integer() and float(codec.offset).is_integer():
            return raw * int(codec.scale) + int(codec.offset)
        # 215 * 0.1 is 21.500000000000004 in binary floating point; the device meant 21.5.
        return round(raw * codec.scale + codec.offset, max(_decimals(codec.scale), _decimals(codec.offset)))
    return raw * codec.scale + codec.offset


def decode(registers: Sequence[int], codec: Codec) -> Value:
    """The value held in ``registers`` (exactly ``codec.count`` of them)."""
    if len(registers) != codec.count:
        raise TypeMismatch(f"expected {codec.count} register(s), got {len(registers)}")
    dtype = codec.data_type
    if codec.count == 1 and not codec.byte_swap and dtype in (DataType.INT16, DataType.UINT16):
        # The common case (one plain register), without building bytes: block reads decode many.
        word = registers[0]
        raw16 = word - 0x10000 if dtype is DataType.INT16 and word >= 0x8000 else word
        return _apply_scale(raw16, codec) if codec.scaled else raw16
    data = registers_to_bytes(registers, byte_swap=codec.byte_swap, word_swap=codec.word_swap)
    if dtype is DataType.BOOL:
        return any(data)
    if dtype is DataType.STRING:
        return data.split(b"\x00", 1)[0].decode(codec.encoding, errors="replace").strip()
    if dtype is DataType.BYTES:
        return data
    if dtype in _INTS:
        raw: float = int.from_bytes(data, "big", signed=_INTS[dtype])
    else:
        (raw,) = struct.unpack(">f" if dtype is DataType.FLOAT32 else ">d", data)
        if dtype is DataType.FLOAT32 and math.isfinite(raw):
            # A float32 holds ~7 significant digits: 21.3 reads back as 21.299999237060547.
            raw = float(f"{raw:.7g}")
    return _apply_scale(raw, codec) if codec.scaled else raw


def encode(value: Value, codec: Codec) -> list[int]:
    """The registers to write for ``value``; ``OutOfRange``/``TypeMismatch`` when it does not fit."""
    dtype = codec.data_type
    if dtype is DataType.BOOL:
        data = (1 if _truthy(value) else 0).to_bytes(codec.count * 2, "big")
    elif dtype in (DataType.STRING, DataType.BYTES):
        data = value if isinstance(value, bytes) else str(value).encode(codec.encoding)
        room = codec.count * 2
        if len(data) > room:
            raise OutOfRange(f"{len(data)} bytes do not fit in {codec.count} register(s)")
        data = data.ljust(room, b"\x00")
    else:
        number = _number(value)
        if codec.scaled:
            number = (number - codec.offset) / codec.scale
        if dtype in _INTS:
            data = _int_bytes(number, dtype)
        else:
            try:
                data = struct.pack(">f" if dtype is DataType.FLOAT32 else ">d", number)
            except OverflowError:
                raise OutOfRange(f"{value!r} does not fit a {dtype.value}") from None
    return bytes_to_registers(data, byte_swap=codec.byte_swap, word_swap=codec.word_swap)


def _truthy(value: Value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "on", "yes")
    return bool(value)


def _number(value: Value) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeMismatch(f"{value!r} is not a number") from None


def _int_bytes(number: float, dtype: DataType) -> bytes:
    if not math.isfinite(number):
        raise OutOfRange(f"{number} cannot be written to an integer register")
    size = (_SIZES[dtype]) * 2
    signed = _INTS[dtype]
    whole = round(number)
    low = -(1 << (size * 8 - 1)) if signed else 0
    high = (1 << (size * 8 - 1)) - 1 if signed else (1 << (size * 8)) - 1
    if not low <= whole <= high:
        raise OutOfRange(f"{whole} is outside the {dtype.value} range [{low}, {high}]")
    return whole.to_bytes(size, "big", signed=signed)


def decode_bits(bits: Sequence[bool], codec: Codec) -> Value:
    """Coils / discrete inputs: one bit is a bool; several are an int, bit 0 the first coil."""
    bits = list(bits)[: codec.count]
    if codec.count == 1:
        return bool(bits[0])
    return sum(1 << i for i, bit in enumerate(bits) if bit)


def encode_bits(value: Value, codec: Codec) -> list[bool]:
    if codec.count == 1:
        return [_truthy(value)]
    number = int(_number(value))
    if not 0 <= number < (1 << codec.count):
        raise OutOfRange(f"{number} does not fit in {codec.count} coils")
    return [bool(number >> i & 1) for i in range(codec.count)]
