"""Modbus decoding, table by table: every data type under every swap, scale/offset, edge values."""

from __future__ import annotations

import math

import pytest

from mappers.modbus.decoding import (
    Codec,
    DataType,
    RegisterKind,
    codec_for,
    decode,
    decode_bits,
    encode,
    encode_bits,
)
from twin.errors import OutOfRange, TypeMismatch
from twin.models import PropertyType as P
from twin.values import Value

D = DataType
SWAPS = {  # (byte_swap, word_swap)
    "none": (False, False),
    "word": (False, True),
    "byte": (True, False),
    "both": (True, True),
}


def S(none: list[int], word: list[int], byte: list[int], both: list[int]) -> dict[str, list[int]]:
    return {"none": none, "word": word, "byte": byte, "both": both}


# value, data type, and the registers as the device holds them under each swap setting.
TABLE: list[tuple[Value, DataType, dict[str, list[int]]]] = [
    (0x1234, D.UINT16, S([0x1234], [0x1234], [0x3412], [0x3412])),
    (65535, D.UINT16, S([0xFFFF], [0xFFFF], [0xFFFF], [0xFFFF])),
    (-2, D.INT16, S([0xFFFE], [0xFFFE], [0xFEFF], [0xFEFF])),
    (-32768, D.INT16, S([0x8000], [0x8000], [0x0080], [0x0080])),
    (
        0x12345678,
        D.INT32,
        S([0x1234, 0x5678], [0x5678, 0x1234], [0x3412, 0x7856], [0x7856, 0x3412]),
    ),
    (
        -123456789,
        D.INT32,
        S([0xF8A4, 0x32EB], [0x32EB, 0xF8A4], [0xA4F8, 0xEB32], [0xEB32, 0xA4F8]),
    ),
    (
        0xDEADBEEF,
        D.UINT32,
        S([0xDEAD, 0xBEEF], [0xBEEF, 0xDEAD], [0xADDE, 0xEFBE], [0xEFBE, 0xADDE]),
    ),
    (
        0x0102030405060708,
        D.INT64,
        S(
            [0x0102, 0x0304, 0x0506, 0x0708],
            [0x0708, 0x0506, 0x0304, 0x0102],
            [0x0201, 0x0403, 0x0605, 0x0807],
            [0x0807, 0x0605, 0x0403, 0x0201],
        ),
    ),
    (
        -2,
        D.INT64,
        S(
            [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
            [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
            [0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
            [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
        ),
    ),
    (
        0xFFFFFFFFFFFFFFFE,
        D.UINT64,
        S(
            [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
            [0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
            [0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
            [0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
        ),
    ),
    (
        1.0,
        D.FLOAT32,
        S([0x3F80, 0x0000], [0x0000, 0x3F80], [0x803F, 0x0000], [0x0000, 0x803F]),
    ),
    (
        -21.5,
        D.FLOAT32,
        S([0xC1AC, 0x0000], [0x0000, 0xC1AC], [0xACC1, 0x0000], [0x0000, 0xACC1]),
    ),
    (
        -2.5,
        D.FLOAT64,
        S([0xC004, 0, 0, 0], [0, 0, 0, 0xC004], [0x04C0, 0, 0, 0], [0, 0, 0, 0x04C0]),
    ),
    (
        "ABCD",
        D.STRING,
        S([0x4142, 0x4344], [0x4344, 0x4142], [0x4241, 0x4443], [0x4443, 0x4241]),
    ),
    (True, D.BOOL, S([0x0001], [0x0001], [0x0100], [0x0100])),
    (False, D.BOOL, S([0], [0], [0], [0])),
]

CASES = [
    pytest.param(value, dtype, swap, regs[swap], id=f"{dtype.value}-{value!r}-{swap}")
    for value, dtype, regs in TABLE
    for swap in SWAPS
]


def codec(dtype: DataType, swap: str = "none", count: int | None = None, **kw: float) -> Codec:
    byte_swap, word_swap = SWAPS[swap]
    size = dtype.registers or count or 1
    return Codec(dtype, size, byte_swap=byte_swap, word_swap=word_swap, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "dtype", "swap", "registers"), CASES)
def test_registers_decode_to_the_value_under_every_swap(
    value: Value, dtype: DataType, swap: str, registers: list[int]
) -> None:
    decoded = decode(registers, codec(dtype, swap, len(registers)))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("value", "dtype", "swap", "registers"), CASES)
def test_value_encodes_to_the_same_registers_under_every_swap(
    value: Value, dtype: DataType, swap: str, registers: list[int]
) -> None:
    assert encode(value, codec(dtype, swap, len(registers))) == registers


@pytest.mark.parametrize(
    ("registers", "dtype", "scale", "offset", "value"),
    [
        ([215], D.INT16, 0.1, 0.0, 21.5),
        ([0xFFCE], D.INT16, 0.1, 0.0, -5.0),  # -50 * 0.1
        ([100], D.UINT16, 0.5, -10.0, 40.0),
        ([215], D.INT16, 10.0, 0.0, 2150),
        ([3], D.UINT16, 1.0, 2.0, 5),
        ([1234], D.UINT16, 0.01, 0.0, 12.34),
        ([0x0001, 0x86A0], D.UINT32, 0.001, 0.0, 100.0),  # 100000 * 0.001
        ([0x41AC, 0x0000], D.FLOAT32, 2.0, 1.0, 44.0),
    ],
)
def test_scale_and_value_offset_apply_after_decoding(
    registers: list[int], dtype: DataType, scale: float, offset: float, value: Value
) -> None:
    c = Codec(dtype, len(registers), scale=scale, offset=offset)
    assert decode(registers, c) == value
    assert encode(value, c) == registers


def test_float32_reads_back_with_its_own_precision() -> None:
    c = Codec(D.FLOAT32, 2)
    assert decode(encode(21.3, c), c) == 21.3


@pytest.mark.parametrize("dtype", [D.FLOAT32, D.FLOAT64])
@pytest.mark.parametrize("swap", list(SWAPS))
def test_nan_survives_every_swap(dtype: DataType, swap: str) -> None:
    c = codec(dtype, swap)
    value = decode(encode(math.nan, c), c)
    assert isinstance(value, float)
    assert math.isnan(value)


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (40000, D.INT16),
        (-1, D.UINT16),
        (1 << 32, D.UINT32),
        (-(1 << 63) - 1, D.INT64),
        (1e40, D.FLOAT32),
        (math.nan, D.INT16),
    ],
)
def test_value_that_does_not_fit_the_register_is_out_of_range(value: Value, dtype: DataType) -> None:
    with pytest.raises(OutOfRange):
        encode(value, codec(dtype))


def test_string_longer_than_its_registers_is_out_of_range() -> None:
    with pytest.raises(OutOfRange):
        encode("toolong", Codec(D.STRING, 2))


def test_short_string_is_padded_and_trailing_nuls_are_dropped() -> None:
    c = Codec(D.STRING, 3)
    assert encode("ab", c) == [0x6162, 0, 0]
    assert decode([0x6162, 0, 0], c) == "ab"


def test_non_numeric_value_for_a_number_register_is_a_type_mismatch() -> None:
    with pytest.raises(TypeMismatch):
        encode("warm", codec(D.INT16))


def test_wrong_register_count_is_a_type_mismatch() -> None:
    with pytest.raises(TypeMismatch):
        decode([1], codec(D.INT32))


@pytest.mark.parametrize(
    ("bits", "count", "value"),
    [([True], 1, True), ([False], 1, False), ([True, False, True], 3, 5), ([False] * 8, 8, 0)],
)
def test_coils_decode_to_bool_or_bitmask(bits: list[bool], count: int, value: Value) -> None:
    c = Codec(D.BOOL, count)
    assert decode_bits(bits, c) == value
    assert encode_bits(value, c) == bits


def test_bitmask_too_large_for_the_coils_is_out_of_range() -> None:
    with pytest.raises(OutOfRange):
        encode_bits(8, Codec(D.BOOL, 3))


@pytest.mark.parametrize(
    ("kind", "ptype", "data_type", "limit", "expected"),
    [
        (RegisterKind.HOLDING, P.INT, None, None, (D.INT16, 1)),
        (RegisterKind.HOLDING, P.INT, None, 2, (D.INT32, 2)),
        (RegisterKind.HOLDING, P.INT, None, 4, (D.INT64, 4)),
        (RegisterKind.INPUT, P.FLOAT, None, 1, (D.INT16, 1)),
        (RegisterKind.INPUT, P.FLOAT, None, 2, (D.FLOAT32, 2)),
        (RegisterKind.INPUT, P.FLOAT, None, None, (D.FLOAT32, 2)),
        (RegisterKind.INPUT, P.DOUBLE, None, None, (D.FLOAT64, 4)),
        (RegisterKind.HOLDING, P.DOUBLE, None, 4, (D.FLOAT64, 4)),
        (RegisterKind.HOLDING, P.BOOLEAN, None, None, (D.BOOL, 1)),
        (RegisterKind.HOLDING, P.STRING, None, 8, (D.STRING, 8)),
        (RegisterKind.HOLDING, P.BYTES, None, 3, (D.BYTES, 3)),
        (RegisterKind.HOLDING, P.INT, D.UINT32, None, (D.UINT32, 2)),
        (RegisterKind.HOLDING, P.FLOAT, D.UINT16, None, (D.UINT16, 1)),
        (RegisterKind.COIL, P.BOOLEAN, None, None, (D.BOOL, 1)),
        (RegisterKind.DISCRETE_INPUT, P.INT, None, 8, (D.BOOL, 8)),
    ],
)
def test_codec_follows_datatype_else_model_type_and_limit(
    kind: RegisterKind,
    ptype: P,
    data_type: DataType | None,
    limit: int | None,
    expected: tuple[DataType, int],
) -> None:
    c = codec_for(kind, ptype, data_type=data_type, limit=limit)
    assert (c.data_type, c.count) == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("HoldingRegister", RegisterKind.HOLDING),
        ("holding", RegisterKind.HOLDING),
        ("InputRegister", RegisterKind.INPUT),
        ("CoilRegister", RegisterKind.COIL),
        ("coils", RegisterKind.COIL),
        ("DiscreteInputRegister", RegisterKind.DISCRETE_INPUT),
        ("discrete_input", RegisterKind.DISCRETE_INPUT),
    ],
)
def test_register_names_accept_kubeedge_spelling_and_short_forms(name: str, kind: RegisterKind) -> None:
    assert RegisterKind(name) is kind
