"""Device and DeviceModel in the shapes of KubeEdge's ``devices.kubeedge.io/v1beta1``.

The same YAML a user gives kubectl loads here. Upstream fields we do not act on are kept
(``extra="allow"``), so a manifest written for KubeEdge never breaks; the fields we act on are
checked, and a bad one is reported with the file, the object and the field (see ``twin.manifests``).
"""

from __future__ import annotations

import enum
import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "AccessMode",
    "Device",
    "DeviceModel",
    "DeviceModelSpec",
    "DeviceProperty",
    "DeviceSpec",
    "ModelProperty",
    "ObjectMeta",
    "PropertyType",
    "ProtocolConfig",
    "Visitor",
    "cycle_seconds",
]

API_GROUP = "devices.kubeedge.io"
API_VERSION: Literal["devices.kubeedge.io/v1beta1"] = "devices.kubeedge.io/v1beta1"

log = logging.getLogger(__name__)

# Since KubeEdge 1.18 cycles are milliseconds; older samples still write nanoseconds
# ("10000000000 # every 10 seconds"). Nobody polls a device once a day, so a value this large
# can only be nanoseconds.
_NANOSECOND_THRESHOLD = 100_000_000


def cycle_seconds(value: int, *, what: str = "cycle") -> float:
    """Convert a KubeEdge collect/report cycle to seconds (ms, or legacy ns when implausibly large)."""
    if value >= _NANOSECOND_THRESHOLD:
        log.info("%s %d is read as nanoseconds (a KubeEdge < 1.18 manifest)", what, value)
        return value / 1e9
    return value / 1e3


def _to_str(value: object) -> object:
    """YAML gives ``minimum: 0`` as an int; KubeEdge's schema has strings."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


LenientStr = Annotated[str, BeforeValidator(_to_str)]


class _Upstream(BaseModel):
    """A KubeEdge-shaped object: unknown fields kept, never rejected."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, defer_build=True)


class PropertyType(enum.StrEnum):
    INT = "INT"
    FLOAT = "FLOAT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    BYTES = "BYTES"
    STREAM = "STREAM"

    @classmethod
    def _missing_(cls, value: object) -> PropertyType | None:
        # KubeEdge v1alpha2 samples write lower case ("int", "boolean").
        if isinstance(value, str):
            upper = value.upper()
            if upper in cls.__members__:
                return cls[upper]
        return None

    @property
    def wire_name(self) -> str:
        """The lower-case type name KubeEdge puts in twin ``metadata.type``."""
        # One string per type, not one per twin property (a node holds thousands of these).
        return _WIRE_NAMES[self]


_WIRE_NAMES = {member: member.value.lower() for member in PropertyType}


class AccessMode(enum.StrEnum):
    READ_WRITE = "ReadWrite"
    READ_ONLY = "ReadOnly"


class ObjectMeta(_Upstream):
    name: str = Field(min_length=1, max_length=253)
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ModelProperty(_Upstream):
    name: str = Field(min_length=1)
    description: str = ""
    type: PropertyType = PropertyType.STRING
    accessMode: AccessMode = AccessMode.READ_WRITE
    minimum: LenientStr | None = None
    maximum: LenientStr | None = None
    unit: str = ""


class DeviceModelSpec(_Upstream):
    protocol: str = ""
    properties: list[ModelProperty] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceModelSpec:
        _check_unique([p.name for p in self.properties])
        return self


class DeviceModel(_Upstream):
    apiVersion: Literal["devices.kubeedge.io/v1beta1"] = API_VERSION
    kind: Literal["DeviceModel"] = "DeviceModel"
    metadata: ObjectMeta
    spec: DeviceModelSpec = Field(default_factory=DeviceModelSpec)

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def property(self, name: str) -> ModelProperty | None:
        for prop in self.spec.properties:
            if prop.name == name:
                return prop
        return None


class ModelRef(_Upstream):
    name: str = Field(min_length=1)


class ProtocolConfig(_Upstream):
    protocolName: str = ""
    configData: dict[str, Any] = Field(default_factory=dict)


class Visitor(_Upstream):
    protocolName: str = ""
    configData: dict[str, Any] = Field(default_factory=dict)


class DesiredValue(_Upstream):
    value: LenientStr = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeviceProperty(_Upstream):
    name: str = Field(min_length=1)
    desired: DesiredValue | None = None
    visitors: Visitor | None = None
    collectCycle: int = Field(default=0, ge=0)
    reportCycle: int = Field(default=0, ge=0)
    reportToCloud: bool = False
    pushMethod: dict[str, Any] | None = None


class StateReport(_Upstream):
    reportCycle: int = Field(default=0, ge=0)
    reportToCloud: bool = False


class DeviceSpec(_Upstream):
    deviceModelRef: ModelRef
    nodeName: str = ""
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    properties: list[DeviceProperty] = Field(default_factory=list)
    stateReport: StateReport | None = None
    methods: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> DeviceSpec:
        _check_unique([p.name for p in self.properties])
        return self


class Device(_Upstream):
    apiVersion: Literal["devices.kubeedge.io/v1beta1"] = API_VERSION
    kind: Literal["Device"] = "Device"
    metadata: ObjectMeta
    spec: DeviceSpec
    status: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        """The twin id, ``namespace/name`` (KubeEdge >= 1.16 topics)."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    @property
    def model_key(self) -> str:
        return f"{self.metadata.namespace}/{self.spec.deviceModelRef.name}"

    @property
    def protocol_name(self) -> str:
        return self.spec.protocol.protocolName

    def property(self, name: str) -> DeviceProperty | None:
        for prop in self.spec.properties:
            if prop.name == name:
                return prop
        return None


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"property name {name!r} appears twice")
        seen.add(name)
