"""The mapper SDK: the plugin interface third-party mappers build on, and the runner that hosts them.

A plugin subclasses ``Mapper`` (see ``mappers.virtual`` for one to copy) and is registered under
the entry-point group ``edgetwin.mappers``. ``run_mappers`` hosts the installed plugins for a node.
Protocol plugins (``mappers.modbus``...) are not imported here: each loads when a device needs it.

Each name below is imported on first use: a node agent without ``--mappers`` reads only
``RunnerSettings`` from here, and does not load the runner, the workers and the plugin interface
(start-up time and ~0.7 MB of its memory).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mappers.bus import Bus, Buses
    from mappers.plugin import AnyMapper, MappedDevice, MappedProperty, Mapper, PluginConfig, ReadResult
    from mappers.registry import ENTRY_POINT_GROUP, PluginInfo, PluginUnavailable, Registry
    from mappers.runner import MapperRunner, run_mappers
    from mappers.settings import RunnerSettings
    from twin.errors import DeviceRefused, DeviceUnreachable
    from twin.models import PropertyType
    from twin.values import PropertySchema, Value, format_value, parse_value

__all__ = [
    "ENTRY_POINT_GROUP",
    "AnyMapper",
    "Bus",
    "Buses",
    "DeviceRefused",
    "DeviceUnreachable",
    "MappedDevice",
    "MappedProperty",
    "Mapper",
    "MapperRunner",
    "PluginConfig",
    "PluginInfo",
    "PluginUnavailable",
    "PropertySchema",
    "PropertyType",
    "ReadResult",
    "Registry",
    "RunnerSettings",
    "Value",
    "format_value",
    "parse_value",
    "run_mappers",
]

#: Where each public name lives.
_HOMES = {
    "Bus": "mappers.bus",
    "Buses": "mappers.bus",
    "AnyMapper": "mappers.plugin",
    "MappedDevice": "mappers.plugin",
    "MappedProperty": "mappers.plugin",
    "Mapper": "mappers.plugin",
    "PluginConfig": "mappers.plugin",
    "ReadResult": "mappers.plugin",
    "ENTRY_POINT_GROUP": "mappers.registry",
    "PluginInfo": "mappers.registry",
    "PluginUnavailable": "mappers.registry",
    "Registry": "mappers.registry",
    "MapperRunner": "mappers.runner",
    "run_mappers": "mappers.runner",
    "RunnerSettings": "mappers.settings",
    "DeviceRefused": "twin.errors",
    "DeviceUnreachable": "twin.errors",
    "PropertyType": "twin.models",
    "PropertySchema": "twin.values",
    "Value": "twin.values",
    "format_value": "twin.values",
    "parse_value": "twin.values",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mappers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
