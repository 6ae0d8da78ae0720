"""BLE byte layouts, table by table: what a characteristic's bytes mean, and the bytes a value writes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mappers.ble.config import DataConverter
from mappers.ble.decoding import Kind, Layout, Operation, decode, encode, splice
from mappers.ble.errors import LayoutMismatch
from twin.errors import OutOfRange, PermanentError, TypeMismatch
from twin.models import PropertyType
from twin.values import Value

INT, FLOAT, BOOL, STR, RAW = (
    PropertyType.INT,
    PropertyType.FLOAT,
    PropertyType.BOOLEAN,
    PropertyType.STRING,
    PropertyType.BYTES,
)
SAMPLE = bytes.fromhex("66082db80b")  # 21.50 degrees (int16 LE x100), 45 %, 3000 mV (uint16 LE)


def layout(**converter: Any) -> Layout:
    """The layout a visitor's ``dataConverter`` (KubeEdge's and edgetwin's keys) describes."""
    return DataConverter.model_validate(converter).layout()


DECODE: list[tuple[str, bytes, dict[str, Any], PropertyType, Value]] = [
    ("whole value, one byte", b"\x2a", {}, INT, 42),
    (
        "sample temperature: signed LE x 0.01",
        SAMPLE,
        {"startIndex": 0, "endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
        FLOAT,
        21.5,
    ),
    ("sample humidity: one byte", SAMPLE, {"startIndex": 2, "endIndex": 2}, INT, 45),
    (
        "sample battery: uint16 LE via length",
        SAMPLE,
        {"offset": 3, "length": 2, "byteOrder": "little"},
        INT,
        3000,
    ),
    (
        "negative temperature",
        bytes.fromhex("0cfe"),
        {"endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
        FLOAT,
        -5.0,
    ),
    (
        "unsigned reads the same bytes positive",
        bytes.fromhex("0cfe"),
        {"endIndex": 1, "byteOrder": "little"},
        INT,
        65036,
    ),
    (
        "big-endian is the default (KubeEdge reads start..end in order)",
        b"\x01\x02",
        {"startIndex": 0, "endIndex": 1},
        INT,
        258,
    ),
    (
        "KubeEdge: startIndex > endIndex is little-endian",
        b"\x01\x02",
        {"startIndex": 1, "endIndex": 0},
        INT,
        513,
    ),
    (
        "KubeEdge CC2650: reversed range, shiftRight 2, Multiply 0.03125",
        bytes.fromhex("7c0d"),
        {
            "startIndex": 1,
            "endIndex": 0,
            "shiftRight": 2,
            "orderOfOperations": [{"operationType": "Multiply", "operationValue": 0.03125}],
        },
        FLOAT,
        26.96875,
    ),
    (
        "KubeEdge xiaomi humidity: Divide 100",
        b"\x00\x00\x2d",
        {
            "startIndex": 2,
            "endIndex": 2,
            "orderOfOperations": [{"operationType": "Divide", "operationValue": 100}],
        },
        FLOAT,
        0.45,
    ),
    (
        "operations in order, then scale and valueOffset",
        b"\x0a",
        {
            "orderOfOperations": [
                {"operationType": "add", "operationValue": 5},
                {"operationType": "SUBTRACT", "operationValue": 1},
            ],
            "scale": 2,
            "valueOffset": 0.5,
        },
        FLOAT,
        28.5,
    ),
    ("shiftLeft", b"\x03", {"shiftLeft": 4}, INT, 48),
    ("INT property rounds a scaled value", b"\x07", {"scale": 0.5}, INT, 4),
    (
        "float32 keeps float32 precision",
        bytes.fromhex("9a99aa41"),
        {"dataType": "float", "byteOrder": "little"},
        FLOAT,
        21.325,
    ),
    (
        "float16 (half)",
        bytes.fromhex("4d60"),
        {"dataType": "float", "startIndex": 0, "endIndex": 1, "byteOrder": "little"},
        FLOAT,
        550.5,
    ),
    ("float64 big-endian", bytes.fromhex("4035800000000000"), {"dataType": "double"}, FLOAT, 21.5),
    ("boolean: any non-zero byte", b"\x00\x04", {}, BOOL, True),
    ("boolean: all zero", b"\x00\x00", {}, BOOL, False),
    ("string up to its first NUL", b"ET-01\x00\x00", {}, STR, "ET-01"),
    ("string from an offset", b"\x01\x02abc", {"startIndex": 2}, STR, "abc"),
    ("bytes are raw", b"\x01\x02\x03", {"startIndex": 1}, RAW, b"\x02\x03"),
    ("empty bytes at the end are still bytes", b"\x01", {"startIndex": 1}, RAW, b""),
    ("number read from a STRING property stays a number", b"\x15", {"dataType": "int"}, STR, 21),
]


@pytest.mark.parametrize(
    ("why", "data", "converter", "ptype", "expected"), DECODE, ids=[c[0] for c in DECODE]
)
def test_decode(
    why: str, data: bytes, converter: dict[str, Any], ptype: PropertyType, expected: Value
) -> None:
    value = decode(data, layout(**converter), ptype)
    assert value == expected
    assert type(value) is type(expected)


MISFITS: list[tuple[str, bytes, dict[str, Any], PropertyType]] = [
    ("endIndex past the end", b"\x01\x02\x03", {"startIndex": 2, "endIndex": 3}, INT),
    ("startIndex past the end", b"\x01", {"startIndex": 2}, INT),
    ("no bytes for a number", b"", {}, INT),
    ("float of 3 bytes", b"\x01\x02\x03", {"dataType": "float"}, FLOAT),
]


@pytest.mark.parametrize(("why", "data", "converter", "ptype"), MISFITS, ids=[c[0] for c in MISFITS])
def test_layout_that_does_not_fit_the_data_is_a_named_error(
    why: str, data: bytes, converter: dict[str, Any], ptype: PropertyType
) -> None:
    with pytest.raises(LayoutMismatch) as error:
        decode(data, layout(**converter), ptype)
    assert "byte" in str(error.value)


def test_layout_mismatch_message_says_what_was_asked_and_what_came() -> None:
    with pytest.raises(LayoutMismatch, match=r"bytes 2\.\.3 asked for, the characteristic holds 3 byte"):
        decode(b"\x01\x02\x03", layout(startIndex=2, endIndex=3), INT)


ENCODE: list[tuple[str, Value, dict[str, Any], PropertyType, bytes]] = [
    (
        "setpoint as signed LE x 0.01",
        21.5,
        {"endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
        FLOAT,
        bytes.fromhex("6608"),
    ),
    (
        "negative",
        -5.0,
        {"endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
        FLOAT,
        bytes.fromhex("0cfe"),
    ),
    ("big-endian uint16", 258, {"length": 2}, INT, b"\x01\x02"),
    ("KubeEdge reversed range", 513, {"startIndex": 1, "endIndex": 0}, INT, b"\x01\x02"),
    (
        "operations undone in reverse order",
        28.5,
        {
            "orderOfOperations": [
                {"operationType": "Add", "operationValue": 5},
                {"operationType": "Subtract", "operationValue": 1},
            ],
            "scale": 2,
            "valueOffset": 0.5,
            "length": 1,
        },
        FLOAT,
        b"\x0a",
    ),
    ("shiftRight undone", 3, {"shiftRight": 2, "length": 1}, INT, b"\x0c"),
    (
        "float32 little-endian",
        21.5,
        {"dataType": "float", "length": 4, "byteOrder": "little"},
        FLOAT,
        bytes.fromhex("0000ac41"),
    ),
    ("boolean is one byte", True, {}, BOOL, b"\x01"),
    ("boolean fills its field", False, {"length": 2}, BOOL, b"\x00\x00"),
    ("text", "hi", {}, STR, b"hi"),
    ("text padded to its field", "hi", {"length": 4}, STR, b"hi\x00\x00"),
    ("bytes as they are", b"\x01\x02", {}, RAW, b"\x01\x02"),
    (
        "value rounded to the field's resolution",
        21.537,
        {"length": 2, "signed": True, "scale": 0.01},
        FLOAT,
        (2154).to_bytes(2, "big"),
    ),
]


@pytest.mark.parametrize(
    ("why", "value", "converter", "ptype", "expected"), ENCODE, ids=[c[0] for c in ENCODE]
)
def test_encode(
    why: str, value: Value, converter: dict[str, Any], ptype: PropertyType, expected: bytes
) -> None:
    assert encode(value, layout(**converter), ptype) == expected


@pytest.mark.parametrize(
    ("value", "converter", "ptype"),
    [
        (21.5, {"endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01}, FLOAT),
        (-40, {"length": 1, "signed": True}, INT),
        (
            0.45,
            {"length": 1, "orderOfOperations": [{"operationType": "Divide", "operationValue": 100}]},
            FLOAT,
        ),
        (1.5e9, {"dataType": "float", "length": 8}, FLOAT),
    ],
)
def test_what_is_written_reads_back_the_same(
    value: Value, converter: dict[str, Any], ptype: PropertyType
) -> None:
    lay = layout(**converter)
    assert decode(encode(value, lay, ptype), lay, ptype) == value


REFUSED: list[tuple[str, Value, dict[str, Any], PropertyType, type[PermanentError]]] = [
    ("300 in one unsigned byte", 300, {"length": 1}, INT, OutOfRange),
    ("negative in an unsigned field", -1, {"length": 2}, INT, OutOfRange),
    ("128 in one signed byte", 128, {"length": 1, "signed": True}, INT, OutOfRange),
    ("scaled past the field", 3.0, {"length": 1, "scale": 0.01}, FLOAT, OutOfRange),
    ("float16 overflow", 1e6, {"dataType": "float", "length": 2}, FLOAT, OutOfRange),
    ("text longer than its field", "hello", {"length": 4}, STR, OutOfRange),
    ("bytes of another size", b"\x01", {"length": 2}, RAW, OutOfRange),
    ("a number without a size", 5, {}, INT, LayoutMismatch),
    ("infinity", math.inf, {"length": 2}, FLOAT, OutOfRange),
    ("text for a number", "warm", {"dataType": "int", "length": 1}, STR, TypeMismatch),
]


@pytest.mark.parametrize(
    ("why", "value", "converter", "ptype", "error"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_value_that_does_not_fit_is_refused_before_anything_is_sent(
    why: str, value: Value, converter: dict[str, Any], ptype: PropertyType, error: type[PermanentError]
) -> None:
    with pytest.raises(error):
        encode(value, layout(**converter), ptype)


def test_splice_replaces_only_the_field_bytes() -> None:
    lay = layout(startIndex=2, endIndex=3)
    assert splice(b"\xaa\xbb\xcc\xdd\xee", b"\x01\x02", lay) == b"\xaa\xbb\x01\x02\xee"
    assert splice(b"\xaa\xbb", b"\x01\x02", lay) == b"\xaa\xbb\x01\x02"  # a value may grow
    with pytest.raises(LayoutMismatch):
        splice(b"\xaa", b"\x01\x02", lay)


def test_operation_and_kind_names_are_read_leniently() -> None:
    assert Operation("multiply") is Operation.MULTIPLY
    assert Kind("Boolean") is Kind.BOOL and Kind("uint") is Kind.INT and Kind("double") is Kind.FLOAT
