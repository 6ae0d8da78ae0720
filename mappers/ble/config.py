"""The BLE ``configData`` models: KubeEdge's keys, plus a few documented extras.

Device (``spec.protocol.configData``): ``macAddress`` (KubeEdge) or ``localName`` (the advertised
name); extras ``adapter`` (``hci0``…, or ``simulated``), ``maxConnections`` (connection slots of
the adapter), ``turn`` (ms a device that keeps a connection for notifications may hold a slot
others wait for), ``timeout`` (ms to connect and for each exchange), ``pair``.

Property (``visitors.configData``): ``characteristicUUID``, ``dataConverter`` (``startIndex``,
``endIndex``, ``shiftLeft``, ``shiftRight``, ``orderOfOperations``; extras ``length``,
``byteOrder``, ``signed``, ``scale``, ``valueOffset``, ``dataType``, ``encoding``), ``dataWrite``
(desired value → bytes); extras ``serviceUUID``, ``writeWithResponse``, ``notify``.

Runner-wide defaults come from the environment: ``EDGETWIN_BLE_ADAPTER`` (the adapter of devices
that name none; ``simulated`` runs every BLE device of the process on the simulated adapter) and
``EDGETWIN_BLE_MAX_CONNECTIONS`` (slots per adapter, default 3).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from mappers.ble.decoding import Kind, Layout, Operation
from mappers.plugin import PluginConfig

__all__ = [
    "ADAPTER_ENV",
    "DEFAULT_MAX_CONNECTIONS",
    "MAX_CONNECTIONS_ENV",
    "BleConfig",
    "BleVisitor",
    "DataConverter",
    "default_adapter",
    "default_max_connections",
    "looks_like_address",
    "normalize_uuid",
    "parse_bytes",
]

log = logging.getLogger(__name__)

ADAPTER_ENV = "EDGETWIN_BLE_ADAPTER"
MAX_CONNECTIONS_ENV = "EDGETWIN_BLE_MAX_CONNECTIONS"
#: Slots per adapter when nothing says otherwise: small adapters and BLE proxies manage about 3.
DEFAULT_MAX_CONNECTIONS = 3

_warned: set[str] = set()
_BASE_UUID = "-0000-1000-8000-00805f9b34fb"
_HEX = re.compile(r"^[0-9a-f]+$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$")
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def default_adapter() -> str:
    """The adapter of devices that name none: ``$EDGETWIN_BLE_ADAPTER``, else the system's default."""
    return os.environ.get(ADAPTER_ENV, "").strip()


def default_max_connections() -> int:
    """``$EDGETWIN_BLE_MAX_CONNECTIONS``, else 3; a value that is not a number ≥ 1 is logged and ignored."""
    text = os.environ.get(MAX_CONNECTIONS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_CONNECTIONS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        if text not in _warned:
            _warned.add(text)
            log.error(
                "%s=%r is not a whole number of 1 or more; using %d connection slots per adapter",
                MAX_CONNECTIONS_ENV,
                text,
                DEFAULT_MAX_CONNECTIONS,
            )
        return DEFAULT_MAX_CONNECTIONS
    return value


def looks_like_address(text: str) -> bool:
    """A Bluetooth address (``A4:C1:38:00:00:01``) or, on macOS, the UUID standing in for one."""
    return bool(_MAC.match(text) or _UUID.match(text))


def normalize_uuid(text: str) -> str:
    """A characteristic or service UUID in bleak's form: 128-bit, lower case, with dashes.

    Accepts 16-bit (``2a19``) and 32-bit short forms, and 32 hex digits without dashes (as
    KubeEdge's CC2650 sample writes them).
    """
    raw = text.strip().lower().removeprefix("0x")
    plain = raw.replace("-", "")
    if not _HEX.match(plain):
        raise ValueError(f"{text!r} is not a UUID")
    if len(plain) == 4 and "-" not in raw:
        return f"0000{plain}{_BASE_UUID}"
    if len(plain) == 8 and "-" not in raw:
        return f"{plain}{_BASE_UUID}"
    if len(plain) == 32 and (raw == plain or _UUID.match(raw)):
        return f"{plain[:8]}-{plain[8:12]}-{plain[12:16]}-{plain[16:20]}-{plain[20:]}"
    raise ValueError(f"{text!r} is not a UUID (use 16-bit like 2a19, or 128-bit)")


def parse_bytes(value: object) -> bytes:
    """A ``dataWrite`` value: a list of byte values (``[1]``, KubeEdge's samples), hex (``"01"``,
    ``"0x0102"``, ``"01 02"``) or base64 (how Go encodes a ``[]byte``: ``"AQ=="``)."""
    if isinstance(value, list):
        if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            raise ValueError(f"{value!r}: bytes must be whole numbers 0..255")
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return bytes([value])
    if isinstance(value, str):
        text = value.strip()
        hexed = re.sub(r"[\s:]", "", text.lower().removeprefix("0x"))
        if hexed and len(hexed) % 2 == 0 and _HEX.match(hexed):
            return bytes.fromhex(hexed)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise ValueError(f"{value!r} is neither a list of bytes, hexadecimal nor base64")


class _Step(PluginConfig):
    operationType: Operation
    operationValue: float

    @model_validator(mode="after")
    def _no_division_by_zero(self) -> _Step:
        if self.operationType is Operation.DIVIDE and self.operationValue == 0:
            raise ValueError("Divide by 0")
        return self


class DataConverter(PluginConfig):
    """Which bytes hold the value and how they read (``mappers.ble.decoding``)."""

    startIndex: int = Field(default=0, ge=0, validation_alias=AliasChoices("startIndex", "offset"))
    endIndex: int | None = Field(default=None, ge=0)
    length: int | None = Field(default=None, ge=1)
    byteOrder: Literal["big", "little"] | None = None
    signed: bool = False
    shiftLeft: int = Field(default=0, ge=0, le=63)
    shiftRight: int = Field(default=0, ge=0, le=63)
    orderOfOperations: tuple[_Step, ...] = ()
    scale: float = 1.0
    valueOffset: float = 0.0
    dataType: Kind | None = None
    encoding: str = "utf-8"

    @field_validator("byteOrder", mode="before")
    @classmethod
    def _order(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> DataConverter:
        if self.scale == 0:
            raise ValueError("scale cannot be 0")
        if self.shiftLeft and self.shiftRight:
            raise ValueError("use shiftLeft or shiftRight, not both")
        if self.endIndex is not None and self.length is not None:
            raise ValueError("use endIndex or length, not both")
        reversed_range = self.endIndex is not None and self.endIndex < self.startIndex
        if reversed_range and self.byteOrder == "big":
            raise ValueError(
                "startIndex > endIndex already means little-endian; drop byteOrder: big or swap them"
            )
        if self.dataType is Kind.FLOAT and (self.shiftLeft or self.shiftRight):
            raise ValueError("shifts apply to integers, not to dataType float")
        size = self.layout().length
        if self.dataType is Kind.FLOAT and size is not None and size not in (2, 4, 8):
            raise ValueError(f"a float takes 2, 4 or 8 bytes, not {size}")
        if size is not None and size > 8 and self.dataType in (None, Kind.INT):
            raise ValueError(f"an integer takes at most 8 bytes, not {size} (use dataType bytes or string)")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {self.encoding!r}") from None
        return self

    def layout(self) -> Layout:
        start, end, little = self.startIndex, self.endIndex, self.byteOrder == "little"
        if end is not None and end < start:
            start, end, little = end, start, True  # KubeEdge: a reversed range is low byte first
        elif self.length is not None:
            end = start + self.length - 1
        return Layout(
            start=start,
            end=end,
            little=little,
            signed=self.signed,
            kind=self.dataType,
            shift_left=self.shiftLeft,
            shift_right=self.shiftRight,
            operations=tuple((s.operationType, s.operationValue) for s in self.orderOfOperations),
            scale=self.scale,
            value_offset=self.valueOffset,
            encoding=self.encoding,
        )


class BleVisitor(PluginConfig):
    characteristicUUID: str = Field(
        validation_alias=AliasChoices("characteristicUUID", "characteristicUuid", "uuid")
    )
    serviceUUID: str | None = Field(default=None, validation_alias=AliasChoices("serviceUUID", "serviceUuid"))
    dataConverter: DataConverter | None = None
    dataWrite: dict[str, bytes] = Field(default_factory=dict)
    #: None: with response when the characteristic offers it, else without.
    writeWithResponse: bool | None = None
    #: None: notified when the characteristic can notify or indicate, else polled.
    notify: bool | None = None

    @field_validator("characteristicUUID", "serviceUUID")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        return None if value is None else normalize_uuid(value)

    @field_validator("dataWrite", mode="before")
    @classmethod
    def _data_write(cls, value: object) -> object:
        if value is None:
            return {}
        if not isinstance(value, dict):
            # pydantic reports ValueError as a validation error, not TypeError
            raise ValueError("dataWrite maps desired values to bytes, like {ON: [1], OFF: [0]}")  # noqa: TRY004
        return {str(k): parse_bytes(v) for k, v in value.items()}

    @property
    def layout(self) -> Layout:
        return self.dataConverter.layout() if self.dataConverter is not None else Layout()

    def mapped_bytes(self, text: str) -> bytes | None:
        """The ``dataWrite`` bytes for a desired value: exact key first, then ignoring case."""
        data = self.dataWrite.get(text)
        if data is not None:
            return data
        lowered = text.lower()
        for key, candidate in self.dataWrite.items():
            if key.lower() == lowered:
                return candidate
        return None


class BleConfig(PluginConfig):
    macAddress: str | None = Field(
        default=None, validation_alias=AliasChoices("macAddress", "macaddress", "address")
    )
    localName: str | None = Field(default=None, validation_alias=AliasChoices("localName", "name"))
    adapter: str | None = None
    maxConnections: int | None = Field(default=None, ge=1)
    turn: float = Field(default=10_000.0, gt=0, description="ms")
    timeout: float = Field(default=10_000.0, gt=0, description="ms")
    pair: bool = False

    @field_validator("macAddress")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        text = value.strip()
        if not looks_like_address(text):
            raise ValueError(f"{value!r} is not a Bluetooth address like A4:C1:38:00:00:01")
        return text.upper().replace("-", ":") if _MAC.match(text) else text.upper()

    @model_validator(mode="after")
    def _target(self) -> BleConfig:
        if not self.macAddress and not self.localName:
            raise ValueError("set macAddress (or localName, the advertised name)")
        return self

    @property
    def target(self) -> str:
        """What the user named the peripheral by, for messages."""
        return self.macAddress or f"the peripheral named {self.localName!r}"

    @property
    def adapter_name(self) -> str:
        return (self.adapter or "").strip() or default_adapter()

    @property
    def slot_limit(self) -> int:
        return self.maxConnections or default_max_connections()
