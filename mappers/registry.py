"""Finding mapper plugins: entry points of the group ``edgetwin.mappers``, loaded lazily by name.

Listing plugins reads only package metadata; a plugin's module (and its protocol library: pymodbus,
asyncua...) is imported the first time a device of its protocol needs it. A plugin that fails to
load is reported with its name and the distribution that ships it, and the others keep running.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from mappers.plugin import AnyMapper, Mapper
from twin.errors import PermanentError

__all__ = ["ENTRY_POINT_GROUP", "PluginInfo", "PluginUnavailable", "Registry"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "edgetwin.mappers"


class PluginUnavailable(PermanentError):
    """No plugin is installed for a protocol, or its module fails to import."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    target: str  # "module:Class"
    distribution: str
    version: str

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}".strip()


def _info(ep: EntryPoint) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(
        name=ep.name,
        target=ep.value,
        distribution=dist.name if dist is not None else "<unknown>",
        version=dist.version if dist is not None else "",
    )


class Registry:
    """The plugins one process can use; ``plugins`` adds classes registered in code (tests, embedding)."""

    def __init__(
        self, *, group: str = ENTRY_POINT_GROUP, plugins: Mapping[str, AnyMapper] | None = None
    ) -> None:
        self._entry_points: dict[str, EntryPoint] = {}
        for ep in entry_points(group=group):
            if ep.name in self._entry_points:
                first = _info(self._entry_points[ep.name])
                log.warning(
                    "mapper plugin %r is provided by %s and %s; using the first",
                    ep.name,
                    first.origin,
                    _info(ep).origin,
                )
                continue
            self._entry_points[ep.name] = ep
        self._loaded: dict[str, AnyMapper] = dict(plugins or {})
        self._failed: dict[str, PluginUnavailable] = {}

    def names(self) -> list[str]:
        return sorted({*self._entry_points, *self._loaded})

    def info(self, name: str) -> PluginInfo:
        ep = self._entry_points.get(name)
        if ep is not None:
            return _info(ep)
        cls = self._loaded.get(name)
        if cls is None:
            raise PluginUnavailable(f"no mapper plugin for protocol {name!r} is installed")
        return PluginInfo(name, f"{cls.__module__}:{cls.__qualname__}", "<in-process>", "")

    def __contains__(self, name: object) -> bool:
        return name in self._entry_points or name in self._loaded

    def load(self, name: str) -> AnyMapper:
        """The plugin class for ``name``, imported on first use; ``PluginUnavailable`` if it cannot be."""
        cls = self._loaded.get(name)
        if cls is not None:
            return cls
        failed = self._failed.get(name)
        if failed is not None:
            raise failed
        ep = self._entry_points.get(name)
        if ep is None:
            raise PluginUnavailable(
                f"no mapper plugin for protocol {name!r} is installed "
                f"(have: {', '.join(self.names()) or 'none'})"
            )
        info = _info(ep)
        try:
            obj = ep.load()
        except Exception as exc:  # any import error of third-party code is reported, not raised
            error = PluginUnavailable(
                f"mapper plugin {name!r} from {info.origin} failed to load ({info.target}): "
                f"{type(exc).__name__}: {exc}"
            )
            self._failed[name] = error
            raise error from exc
        if not (isinstance(obj, type) and issubclass(obj, Mapper)):
            error = PluginUnavailable(
                f"mapper plugin {name!r} from {info.origin}: {info.target} is not a mappers.Mapper subclass"
            )
            self._failed[name] = error
            raise error
        self._loaded[name] = obj
        return obj
