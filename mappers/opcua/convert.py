"""OPC UA values to DeviceModel types and back: pure functions, tested table-driven.

A read gives whatever the node holds (an Int16, a Float, a LocalizedText...); the twin wants the
property's DeviceModel type (``INT``, ``FLOAT``, ``BOOLEAN``, ``STRING``, ``BYTES``). A write must
send the node's own built-in type: an asyncua server (like most) answers a Double written to a Float
node with ``BadTypeMismatch``. So the plugin reads each node's DataType once when it connects,
turns it into a ``VariantType`` and converts every desired value to exactly that, refusing values
that do not fit (300 for a Byte) before anything is sent.
"""

from __future__ import annotations

import datetime
import math
import struct
import uuid
from typing import Any

from asyncua import ua

from twin.errors import DeviceRefused, OutOfRange, TypeMismatch
from twin.models import PropertyType
from twin.values import Value, format_value, parse_value

__all__ = ["INTEGER_RANGES", "from_opcua", "property_type", "to_variant"]

VT = ua.VariantType

#: Inclusive range of each OPC UA integer type.
INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    VT.SByte: (-(2**7), 2**7 - 1),
    VT.Byte: (0, 2**8 - 1),
    VT.Int16: (-(2**15), 2**15 - 1),
    VT.UInt16: (0, 2**16 - 1),
    VT.Int32: (-(2**31), 2**31 - 1),
    VT.UInt32: (0, 2**32 - 1),
    VT.Int64: (-(2**63), 2**63 - 1),
    VT.UInt64: (0, 2**64 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38
_TEXT = (VT.String, VT.LocalizedText, VT.XmlElement, VT.QualifiedName)


def property_type(vtype: ua.VariantType) -> PropertyType | None:
    """The DeviceModel type for a node of this built-in type (discovery); ``None``: not representable."""
    if vtype is VT.Boolean:
        return PropertyType.BOOLEAN
    if vtype in INTEGER_RANGES:
        return PropertyType.INT
    if vtype is VT.Float:
        return PropertyType.FLOAT
    if vtype is VT.Double:
        return PropertyType.DOUBLE
    if vtype is VT.ByteString:
        return PropertyType.BYTES
    if vtype in (*_TEXT, VT.DateTime, VT.Guid, VT.NodeId, VT.ExpandedNodeId):
        return PropertyType.STRING
    return None


def _float32(value: float) -> float:
    """A Float node's value as its shortest decimal (21.3, not 21.299999237060547)."""
    if not math.isfinite(value):
        return value
    exact = float(struct.unpack("<f", struct.pack("<f", value))[0])
    for digits in range(6, 10):
        shorter = float(f"{exact:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shorter))[0] == exact:
            return shorter
    return exact


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, ua.QualifiedName):
        return f"{value.NamespaceIndex}:{value.Name}"
    if isinstance(value, datetime.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return stamp.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, ua.NodeId):
        return value.to_string()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, bool | int | float):
        return format_value(value)
    return str(value)


def from_opcua(value: Any, vtype: ua.VariantType, ptype: PropertyType, *, where: str) -> Value:
    """A value read from a node, as the property's DeviceModel type; ``TypeMismatch`` if it is not one."""
    if value is None:
        raise DeviceRefused(f"{where} holds no value (Null)")
    if isinstance(value, list):
        if ptype is PropertyType.STRING:
            # An array as comma-separated text: commas pass KubeEdge's value rule, spaces do not.
            return ",".join(_text(v) for v in value)
        raise TypeMismatch(f"{where} holds an array of {len(value)} {vtype.name}, not one {ptype.value}")
    match ptype:
        case PropertyType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
        case PropertyType.INT:
            if isinstance(value, int):  # bool too: 1/0
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                return _float32(number) if vtype is VT.Float else number
        case PropertyType.BYTES | PropertyType.STREAM:
            if isinstance(value, bytes):
                return value
            if isinstance(value, str):
                return value.encode()
        case _:
            return _text(value)
    shown = _text(value)
    raise TypeMismatch(f"{where} holds {vtype.name} {shown[:40]!r}, not a {ptype.value}")


def _parse(value: Value, ptype: PropertyType) -> Value:
    """A desired value given as text for a node that is not text (a STRING property on an Int32 node)."""
    return parse_value(value, ptype) if isinstance(value, str) else value


def to_variant(value: Value, vtype: ua.VariantType, *, where: str) -> ua.Variant:
    """A desired value as a Variant of the node's own type; ``OutOfRange``/``TypeMismatch`` if not."""
    if vtype is VT.Boolean:
        flag = _parse(value, PropertyType.BOOLEAN)
        if isinstance(flag, int | float) and not isinstance(flag, bool):
            if flag not in (0, 1):
                raise OutOfRange(f"{value!r} is not a boolean for {where}")
            flag = bool(flag)
        if not isinstance(flag, bool):
            raise TypeMismatch(f"{value!r} is not a boolean for {where}")
        return ua.Variant(flag, vtype)
    bounds = INTEGER_RANGES.get(vtype)
    if bounds is not None:
        number = _parse(value, PropertyType.INT)
        if isinstance(number, float):
            if not number.is_integer():
                raise TypeMismatch(f"{value!r} is not an integer for {where} ({vtype.name})")
            number = int(number)
        if not isinstance(number, int):
            raise TypeMismatch(f"{value!r} is not an integer for {where} ({vtype.name})")
        low, high = bounds
        if not low <= number <= high:
            raise OutOfRange(f"{number} is outside the {vtype.name} range [{low}, {high}] of {where}")
        return ua.Variant(number, vtype)
    if vtype in (VT.Float, VT.Double):
        number = _parse(value, PropertyType.DOUBLE)
        if not isinstance(number, int | float):
            raise TypeMismatch(f"{value!r} is not a number for {where} ({vtype.name})")
        real = float(number)
        if vtype is VT.Float and math.isfinite(real) and abs(real) > _FLOAT32_MAX:
            raise OutOfRange(f"{real} does not fit the Float of {where}")
        return ua.Variant(real, vtype)
    if vtype is VT.String:
        return ua.Variant(value if isinstance(value, str) else _text(value), vtype)
    if vtype is VT.LocalizedText:
        return ua.Variant(ua.LocalizedText(value if isinstance(value, str) else _text(value)), vtype)
    if vtype is VT.ByteString:
        return ua.Variant(value if isinstance(value, bytes) else str(value).encode(), vtype)
    if vtype is VT.DateTime:
        try:
            stamp = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise TypeMismatch(f"{value!r} is not an ISO 8601 time for {where}") from None
        return ua.Variant(stamp if stamp.tzinfo else stamp.replace(tzinfo=datetime.UTC), vtype)
    if vtype is VT.Guid:
        try:
            return ua.Variant(uuid.UUID(str(value)), vtype)
        except ValueError:
            raise TypeMismatch(f"{value!r} is not a GUID for {where}") from None
    if vtype is VT.Variant:
        # BaseDataType or Number: the node takes any type, so send the natural one for the value.
        return ua.Variant(value)
    raise DeviceRefused(f"{where} is a {vtype.name} node: edgetwin cannot write that type")
