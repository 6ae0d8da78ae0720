"""The mapper plugin interface: what a protocol plugin implements, and nothing more.

A plugin is a ``Mapper`` subclass registered under the entry-point group ``edgetwin.mappers``. It
declares two pydantic models — ``protocol_config`` for the Device's ``spec.protocol.configData``
and ``visitor_config`` for each property's ``visitors.configData`` — and implements connect/close
(an async context manager), ``read`` and ``write``; a push protocol also implements ``watch``. The
runner (``mappers.runner``) owns everything else: membership, polling cycles, reporting, desired
values, device state, reconnects with backoff.

One ``Mapper`` instance serves one device for one connection: the runner enters it, uses it until
the device fails or goes away, and makes a new one to reconnect. Failures are errors from
``twin.errors``: ``DeviceUnreachable`` (temporary: the runner marks the device offline and
reconnects) and ``DeviceRefused`` (the device answered with an error: unhealthy, keep going).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict

from mappers.bus import Buses
from twin.errors import DeviceUnreachable, PermanentError, ReadOnlyProperty
from twin.models import PropertyType
from twin.values import PropertySchema, Value

__all__ = [
    "AnyMapper",
    "MappedDevice",
    "MappedProperty",
    "Mapper",
    "PluginConfig",
    "ReadResult",
]

ConfigT = TypeVar("ConfigT", bound=BaseModel)
VisitorT = TypeVar("VisitorT", bound=BaseModel)

# What a read of one property gave: its value, or the error the device answered with.
ReadResult = Value | PermanentError


class PluginConfig(BaseModel):
    """A base for ``configData`` models: tolerant of upstream keys a plugin does not use, frozen."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Empty(PluginConfig):
    pass


@dataclass(frozen=True)
class MappedProperty(Generic[VisitorT]):
    """One property as a plugin sees it: its visitor config already validated."""

    name: str
    config: VisitorT
    #: The DeviceModel's rules for the property: type, access mode, minimum and maximum.
    schema: PropertySchema
    collect_cycle: float  # seconds
    report_cycle: float  # seconds; 0 reports every change at once

    @property
    def type(self) -> PropertyType:
        return self.schema.type

    @property
    def writable(self) -> bool:
        return not self.schema.read_only


@dataclass(frozen=True)
class MappedDevice(Generic[ConfigT, VisitorT]):
    """One device as a plugin sees it."""

    id: str  # namespace/name
    config: ConfigT
    properties: tuple[MappedProperty[VisitorT], ...]

    def property(self, name: str) -> MappedProperty[VisitorT] | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None


class Mapper(ABC, Generic[ConfigT, VisitorT]):
    """Base class of protocol plugins. Subclasses set the class attributes and implement ``read``.

    ``buses`` lets devices on one physical link share it (``mappers.bus``).
    """

    #: The protocol name, as in ``spec.protocol.protocolName`` and the entry point's name.
    protocol: ClassVar[str] = ""
    #: pydantic model of the Device's ``spec.protocol.configData``.
    protocol_config: ClassVar[type[BaseModel]] = _Empty
    #: pydantic model of a property's ``visitors.configData``.
    visitor_config: ClassVar[type[BaseModel]] = _Empty

    def __init__(self, device: MappedDevice[ConfigT, VisitorT], buses: Buses) -> None:
        self.device = device
        self.buses = buses

    async def __aenter__(self) -> Self:
        try:
            await self.connect()
        except BaseException:
            # A failed connect may have taken resources (a shared bus): give them back.
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection; raise ``DeviceUnreachable`` when the device cannot be reached."""

    async def close(self) -> None:
        """Release the connection; must not raise."""

    @abstractmethod
    async def read(self, prop: MappedProperty[VisitorT]) -> Value:
        """Read one property from the device."""

    async def write(self, prop: MappedProperty[VisitorT], value: Value) -> None:
        """Write one property; ``value`` is already parsed by the DeviceModel type."""
        raise ReadOnlyProperty(f"the {self.protocol or type(self).__name__} mapper cannot write {prop.name}")

    async def read_many(self, props: Sequence[MappedProperty[VisitorT]]) -> dict[str, ReadResult]:
        """Read several properties due at once; override to batch (Modbus block reads).

        A device that does not answer raises ``DeviceUnreachable`` for the whole batch; an error
        answer for one property is returned in its place.
        """
        results: dict[str, ReadResult] = {}
        for prop in props:
            try:
                results[prop.name] = await self.read(prop)
            except DeviceUnreachable:
                raise
            except PermanentError as exc:
                results[prop.name] = exc
        return results

    def pushes(self, prop: MappedProperty[VisitorT]) -> bool:
        """Whether the device pushes this property's changes (``watch``) instead of being polled.

        Pushed properties are read once when the device connects (and after a desired value is
        written), then only through ``watch``; the others are polled every ``collectCycle``.
        """
        return False

    async def watch(self, props: Sequence[MappedProperty[VisitorT]]) -> AsyncIterator[tuple[str, ReadResult]]:
        """Push protocols override this: yield ``(property name, value)`` as the device sends them.

        ``props`` are the properties for which ``pushes`` is true (possibly none); the runner calls
        it once per connection, beside the polls. Yielding a ``PermanentError`` instead of a value
        marks that property failed, like an error answer to a read. An exception raised here ends
        the connection like a failed read: a plugin whose library notices a dead connection on its
        own (a keep-alive) can raise ``DeviceUnreachable`` from here even when nothing is pushed,
        so the device goes offline without waiting for its next poll.
        """
        return
        yield  # an async generator that yields nothing


#: A plugin class whatever its config types: what the registry loads and the runner hosts.
AnyMapper: TypeAlias = type[Mapper[Any, Any]]
