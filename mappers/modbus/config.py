"""The Modbus ``configData`` models: KubeEdge's keys, plus a few documented extras.

Device (``spec.protocol.configData``): ``communicateMode`` (TCP | RTU), ``ip``, ``port``,
``slaveID``; for RTU ``serialPort``, ``baudRate``, ``dataBits``, ``parity``, ``stopBits``.
Extras: ``timeout`` (ms per request), ``frameGap`` (ms of silence between frames on the bus),
``maxGap`` (registers a block read may skip), ``maxRegisters`` (per request).

Property (``visitors.configData``): ``register``, ``offset``, ``limit``, ``scale``, ``isSwap``,
``isRegisterSwap``; extras ``dataType``, ``valueOffset``, ``encoding``, ``writeMultiple``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from mappers.modbus.decoding import GENERIC_TYPES, DataType, RegisterKind, resolve_data_type
from mappers.modbus.planner import MAX_REGISTERS
from mappers.plugin import PluginConfig

__all__ = ["ModbusConfig", "ModbusVisitor"]

_PARITY = {"none": "N", "n": "N", "even": "E", "e": "E", "odd": "O", "o": "O"}


class ModbusConfig(PluginConfig):
    communicateMode: Literal["TCP", "RTU"] | None = None
    ip: str = ""
    port: int = Field(default=502, ge=1, le=65535)
    slaveID: int = Field(
        default=1, ge=0, le=255, validation_alias=AliasChoices("slaveID", "slaveId", "slave_id")
    )
    serialPort: str = ""
    baudRate: int = Field(default=19200, gt=0)
    dataBits: int = Field(default=8, ge=5, le=8)
    parity: str = "N"
    stopBits: int = Field(default=1, ge=1, le=2)
    timeout: float = Field(default=1000.0, gt=0, description="ms per request")
    frameGap: float | None = Field(default=None, ge=0, description="ms between frames on the bus")
    maxGap: int = Field(default=16, ge=0, le=MAX_REGISTERS)
    maxRegisters: int = Field(default=MAX_REGISTERS, ge=1, le=MAX_REGISTERS)

    @field_validator("communicateMode", mode="before")
    @classmethod
    def _mode(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("parity", mode="before")
    @classmethod
    def _parity(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in _PARITY:
            return _PARITY[value.lower()]
        raise ValueError("parity must be none, even or odd")

    @model_validator(mode="after")
    def _endpoint(self) -> ModbusConfig:
        if self.mode == "RTU" and not self.serialPort:
            raise ValueError("RTU needs serialPort")
        if self.mode == "TCP" and not self.ip:
            raise ValueError("TCP needs ip")
        return self

    @property
    def mode(self) -> Literal["TCP", "RTU"]:
        if self.communicateMode is not None:
            return self.communicateMode
        return "RTU" if self.serialPort and not self.ip else "TCP"

    @property
    def bus_key(self) -> str:
        return (
            f"modbus:serial:{self.serialPort}" if self.mode == "RTU" else f"modbus:tcp:{self.ip}:{self.port}"
        )

    @property
    def frame_gap_seconds(self) -> float:
        if self.frameGap is not None:
            return self.frameGap / 1000
        if self.mode == "TCP":
            return 0.0
        # Modbus RTU: 3.5 character times of 11 bits, fixed at 1.75 ms above 19200 baud.
        return 0.00175 if self.baudRate > 19200 else 3.5 * 11 / self.baudRate


class ModbusVisitor(PluginConfig):
    # KubeEdge calls it ``register``, which pydantic's BaseModel reserves.
    kind: RegisterKind = Field(validation_alias=AliasChoices("register", "kind"))
    offset: int = Field(default=0, ge=0, le=65535)
    limit: int | None = Field(default=None, ge=1, le=2000)
    scale: float = 1.0
    isSwap: bool = False
    isRegisterSwap: bool = False
    dataType: str | None = None
    valueOffset: float = 0.0
    encoding: str = "utf-8"
    writeMultiple: bool = False

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale cannot be 0")
        return value

    @field_validator("dataType")
    @classmethod
    def _data_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        key = value.strip().lower()
        if key in GENERIC_TYPES:
            return key
        try:
            return DataType(key).value
        except ValueError:
            names = sorted({*(t.value for t in DataType), *GENERIC_TYPES})
            raise ValueError(f"unknown dataType {value!r} (use one of {', '.join(names)})") from None

    @property
    def data_type(self) -> DataType | None:
        """The exact type: ``dataType`` with ``limit`` deciding the size of ``int``/``float``."""
        return resolve_data_type(self.dataType, self.limit)

    @model_validator(mode="after")
    def _fits(self) -> ModbusVisitor:
        if not self.kind.is_bits:
            if self.limit is not None and self.limit > MAX_REGISTERS:
                raise ValueError(f"limit {self.limit} exceeds {MAX_REGISTERS} registers")
            exact = self.data_type
            size = exact.registers if exact is not None else None
            if size is not None and self.limit is not None and self.limit != size:
                raise ValueError(f"dataType {self.dataType} takes {size} register(s), not limit {self.limit}")
        return self
