"""The declared public surface of ``twin`` and the mapper SDK, pinned: plugins and apps build on it.

Changing one of these lists is an API change for third-party mappers and apps: do it on purpose,
and say so in the release notes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import mappers
import twin

TWIN = [
    "AccessMode", "BrokerUnavailable", "Device", "DeviceModel", "DeviceRefused", "DeviceSchema",
    "DeviceTwin", "DeviceUnreachable", "EdgetwinError", "ForbiddenKey", "InvalidManifest",
    "InvalidPayload", "InvalidValue", "Manifests", "OutOfRange", "PermanentError", "PropertySchema",
    "PropertyState", "PropertyType", "ReadOnlyProperty", "RequestRefused", "StoreCorrupt",
    "TemporaryError", "TwinClient", "TwinEvent", "TwinProperty", "TwinService", "TwinStore",
    "TwinValue", "TypeMismatch", "UnknownDevice", "UnknownProperty", "UpdateOutcome", "Value",
    "Version", "VersionConflict", "format_value", "load_manifests", "parse_manifest", "parse_value",
]  # fmt: skip

MAPPER_SDK = [
    "ENTRY_POINT_GROUP", "AnyMapper", "Bus", "Buses", "DeviceRefused", "DeviceUnreachable",
    "MappedDevice", "MappedProperty", "Mapper", "MapperRunner", "PluginConfig", "PluginInfo",
    "PluginUnavailable", "PropertySchema", "PropertyType", "ReadResult", "Registry", "RunnerSettings",
    "Value", "format_value", "parse_value", "run_mappers",
]  # fmt: skip


@pytest.mark.parametrize(("package", "names"), [(twin, TWIN), (mappers, MAPPER_SDK)], ids=["twin", "mappers"])
def test_the_public_names_are_exactly_the_pinned_ones_and_all_resolve(
    package: object, names: list[str]
) -> None:
    exported = package.__all__  # type: ignore[attr-defined]
    assert set(exported) == set(names)
    for name in exported:
        assert getattr(package, name) is not None


PACKAGES = ["edgemqtt", "twin", "mappers", "cloud_sync", "api_server", "node_agent", "edgetwin"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_package_declares_it_is_typed(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert (Path(module.__file__).parent / "py.typed").is_file()
