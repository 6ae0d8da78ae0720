"""The device twin: per device and property the desired and reported value, served over MQTT.

The public surface, for apps, mappers and the services built on the twin: the models (Device,
DeviceModel), the twin service and its store, ``TwinClient`` for apps, the value codec, the wire
schema and the error tree. Everything else is internal.

The app client (``TwinClient``, ``TwinEvent``, ``PropertyState``) loads on first use: a node agent,
which imports this package for its twin service, never uses it.
"""

from typing import TYPE_CHECKING, Any

from twin.engine import DeviceSchema, DeviceTwin, TwinProperty, TwinValue, UpdateOutcome, Version
from twin.errors import (
    BrokerUnavailable,
    DeviceRefused,
    DeviceUnreachable,
    EdgetwinError,
    ForbiddenKey,
    InvalidManifest,
    InvalidPayload,
    InvalidValue,
    OutOfRange,
    PermanentError,
    ReadOnlyProperty,
    RequestRefused,
    StoreCorrupt,
    TemporaryError,
    TypeMismatch,
    UnknownDevice,
    UnknownProperty,
    VersionConflict,
)
from twin.manifests import Manifests, load_manifests, parse_manifest
from twin.models import AccessMode, Device, DeviceModel, PropertyType
from twin.service import TwinService
from twin.store import TwinStore
from twin.values import PropertySchema, Value, format_value, parse_value

if TYPE_CHECKING:
    from twin.client import PropertyState, TwinClient, TwinEvent

__all__ = [
    "AccessMode",
    "BrokerUnavailable",
    "Device",
    "DeviceModel",
    "DeviceRefused",
    "DeviceSchema",
    "DeviceTwin",
    "DeviceUnreachable",
    "EdgetwinError",
    "ForbiddenKey",
    "InvalidManifest",
    "InvalidPayload",
    "InvalidValue",
    "Manifests",
    "OutOfRange",
    "PermanentError",
    "PropertySchema",
    "PropertyState",
    "PropertyType",
    "ReadOnlyProperty",
    "RequestRefused",
    "StoreCorrupt",
    "TemporaryError",
    "TwinClient",
    "TwinEvent",
    "TwinProperty",
    "TwinService",
    "TwinStore",
    "TwinValue",
    "TypeMismatch",
    "UnknownDevice",
    "UnknownProperty",
    "UpdateOutcome",
    "Value",
    "Version",
    "VersionConflict",
    "format_value",
    "load_manifests",
    "parse_manifest",
    "parse_value",
]


def __getattr__(name: str) -> Any:
    if name in ("PropertyState", "TwinClient", "TwinEvent"):
        import twin.client

        return getattr(twin.client, name)
    raise AttributeError(f"module 'twin' has no attribute {name!r}")
