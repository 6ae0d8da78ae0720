"""The mapper SDK: the plugin interface third-party mappers build on, and the runner that hosts them.

A plugin subclasses ``Mapper`` (see ``mappers.virtual`` for one to copy) and is registered under
the entry-point group ``edgetwin.mappers``. ``run_mappers`` hosts the installed plugins for a node.
Protocol plugins (``mappers.modbus``...) are not imported here: each loads when a device needs it.
"""

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
