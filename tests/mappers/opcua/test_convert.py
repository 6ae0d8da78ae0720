"""OPC UA values to DeviceModel types and desired values to the node's own type, table-driven."""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

import pytest
from asyncua import ua

from mappers.opcua.convert import from_opcua, property_type, to_variant
from twin.errors import DeviceRefused, OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value

VT = ua.VariantType
P = PropertyType
WHERE = "p (ns=2;s=X)"


@pytest.mark.parametrize(
    ("value", "vtype", "ptype", "expected"),
    [
        (-7, VT.Int16, P.INT, -7),
        (65535, VT.UInt16, P.INT, 65535),
        (2**63, VT.UInt64, P.INT, 2**63),
        (True, VT.Boolean, P.INT, 1),
        (21.0, VT.Double, P.INT, 21),
        (21.299999237060547, VT.Float, P.FLOAT, 21.3),
        (21.299999237060547, VT.Float, P.DOUBLE, 21.3),
        (0.1, VT.Double, P.DOUBLE, 0.1),
        (3, VT.Int32, P.FLOAT, 3.0),
        (float("nan"), VT.Float, P.FLOAT, "nan"),
        (True, VT.Boolean, P.BOOLEAN, True),
        (0, VT.Byte, P.BOOLEAN, False),
        ("EB-200", VT.String, P.STRING, "EB-200"),
        (ua.LocalizedText("open"), VT.LocalizedText, P.STRING, "open"),
        (ua.QualifiedName("Boiler", 2), VT.QualifiedName, P.STRING, "2:Boiler"),
        (42, VT.Int32, P.STRING, "42"),
        (1.5, VT.Double, P.STRING, "1.5"),
        (
            datetime.datetime(2026, 3, 1, 12, 0, 5, 250000, tzinfo=datetime.UTC),
            VT.DateTime,
            P.STRING,
            "2026-03-01T12:00:05.250Z",
        ),
        (ua.NodeId.from_string("ns=2;i=7"), VT.NodeId, P.STRING, "ns=2;i=7"),
        ([1, 2, 3], VT.Int32, P.STRING, "1,2,3"),
        (b"\x01\xff", VT.ByteString, P.BYTES, b"\x01\xff"),
        ("ab", VT.String, P.BYTES, b"ab"),
    ],
)
def test_values_read_become_the_property_type(
    value: Any, vtype: ua.VariantType, ptype: P, expected: Any
) -> None:
    result = from_opcua(value, vtype, ptype, where=WHERE)
    if expected == "nan":
        assert isinstance(result, float) and math.isnan(result)
        return
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "vtype", "ptype", "error"),
    [
        ("warm", VT.String, P.INT, TypeMismatch),
        (21.5, VT.Double, P.INT, TypeMismatch),
        (2, VT.Int32, P.BOOLEAN, TypeMismatch),
        (True, VT.Boolean, P.FLOAT, TypeMismatch),
        ([1, 2], VT.Int32, P.INT, TypeMismatch),
        (None, VT.Double, P.DOUBLE, DeviceRefused),
        (5, VT.Int32, P.BYTES, TypeMismatch),
    ],
)
def test_values_that_are_not_the_property_type_are_named_errors(
    value: Any, vtype: ua.VariantType, ptype: P, error: type[Exception]
) -> None:
    with pytest.raises(error, match="ns=2;s=X"):
        from_opcua(value, vtype, ptype, where=WHERE)


@pytest.mark.parametrize(
    ("value", "vtype", "expected"),
    [
        (True, VT.Boolean, True),
        (1, VT.Boolean, True),
        ("off", VT.Boolean, False),
        (-32768, VT.Int16, -32768),
        (255, VT.Byte, 255),
        ("300", VT.UInt16, 300),
        (21.0, VT.Int32, 21),
        (2**64 - 1, VT.UInt64, 2**64 - 1),
        (2.5, VT.Float, 2.5),
        (3, VT.Double, 3.0),
        ("4.25", VT.Double, 4.25),
        ("EB-300", VT.String, "EB-300"),
        (21.5, VT.String, "21.5"),
        (True, VT.String, "true"),
        (b"\x00\x01", VT.ByteString, b"\x00\x01"),
        ("ab", VT.ByteString, b"ab"),
    ],
)
def test_desired_values_are_sent_as_the_nodes_own_type(
    value: Value, vtype: ua.VariantType, expected: Any
) -> None:
    variant = to_variant(value, vtype, where=WHERE)
    assert variant.VariantType is vtype
    assert variant.Value == expected
    assert type(variant.Value) is type(expected)


def test_desired_texts_dates_and_guids() -> None:
    text = to_variant("open", VT.LocalizedText, where=WHERE)
    assert text.Value == ua.LocalizedText("open")
    stamp = to_variant("2026-03-01T12:00:00Z", VT.DateTime, where=WHERE)
    assert stamp.Value == datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
    guid = "72962b91-fa75-4ae6-8d28-b404dc7daf63"
    assert to_variant(guid, VT.Guid, where=WHERE).Value == uuid.UUID(guid)
    assert to_variant(7, VT.Variant, where=WHERE).VariantType is VT.Int64


@pytest.mark.parametrize(
    ("value", "vtype", "error", "message"),
    [
        (256, VT.Byte, OutOfRange, r"outside the Byte range \[0, 255\]"),
        (-1, VT.UInt32, OutOfRange, "outside the UInt32 range"),
        (40000, VT.Int16, OutOfRange, "outside the Int16 range"),
        (2.5, VT.Int32, TypeMismatch, "not an integer"),
        ("warm", VT.Int32, TypeMismatch, "not an integer"),
        (1e39, VT.Float, OutOfRange, "does not fit the Float"),
        ("warm", VT.Double, TypeMismatch, "not a number"),
        (2, VT.Boolean, OutOfRange, "not a boolean"),
        ("maybe", VT.Boolean, TypeMismatch, "not a boolean"),
        ("yesterday", VT.DateTime, TypeMismatch, "not an ISO 8601 time"),
        ("x", VT.Guid, TypeMismatch, "not a GUID"),
        ("x", VT.ExtensionObject, DeviceRefused, "cannot write"),
    ],
)
def test_desired_values_that_do_not_fit_the_node_are_refused_before_sending(
    value: Value, vtype: ua.VariantType, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        to_variant(value, vtype, where=WHERE)


@pytest.mark.parametrize(
    ("vtype", "expected"),
    [
        (VT.Boolean, P.BOOLEAN),
        (VT.SByte, P.INT),
        (VT.UInt64, P.INT),
        (VT.Float, P.FLOAT),
        (VT.Double, P.DOUBLE),
        (VT.String, P.STRING),
        (VT.LocalizedText, P.STRING),
        (VT.DateTime, P.STRING),
        (VT.ByteString, P.BYTES),
        (VT.ExtensionObject, None),
        (VT.Variant, None),
    ],
)
def test_discovered_node_types_map_to_device_model_types(vtype: ua.VariantType, expected: P | None) -> None:
    assert property_type(vtype) is expected
