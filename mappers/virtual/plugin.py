"""The ``virtual`` mapper: the reference plugin that a plugin author copies.

It shows everything a plugin has to do and nothing more: two pydantic models for the configData it
understands, connect/close, ``read`` and ``write``, and errors from ``twin.errors``. Its "device" is
an in-memory ``SimulatedDevice`` (``mappers.virtual.device``), so it runs on any machine.

A Device for it::

    spec:
      protocol: {protocolName: virtual, configData: {latencyMs: 0}}
      properties:
        - name: temp
          visitors: {protocolName: virtual, configData: {initial: "21.5", step: 0.5}}
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from mappers.plugin import MappedProperty, Mapper, PluginConfig
from mappers.virtual.device import SimulatedDevice, simulated
from twin.errors import DeviceRefused, DeviceUnreachable
from twin.models import PropertyType
from twin.values import Value

__all__ = ["VirtualConfig", "VirtualMapper", "VirtualVisitor"]


class VirtualConfig(PluginConfig):
    """``spec.protocol.configData``: how the (simulated) device is reached."""

    latencyMs: float = Field(default=0.0, ge=0)


class VirtualVisitor(PluginConfig):
    """A property's ``visitors.configData``: where the value lives on the device."""

    #: The value before anything is written (as a string, like KubeEdge's values).
    initial: str = ""
    #: Added to a numeric value on every read: a counter or a drifting sensor.
    step: float = 0.0


def _initial(prop: MappedProperty[VirtualVisitor]) -> Value:
    text = prop.config.initial
    match prop.type:
        case PropertyType.INT:
            return int(float(text or 0))
        case PropertyType.FLOAT | PropertyType.DOUBLE:
            return float(text or 0)
        case PropertyType.BOOLEAN:
            return text.lower() in ("true", "1", "on")
        case _:
            return text


class VirtualMapper(Mapper[VirtualConfig, VirtualVisitor]):
    protocol = "virtual"
    protocol_config = VirtualConfig
    visitor_config = VirtualVisitor

    _sim: SimulatedDevice | None = None

    async def connect(self) -> None:
        sim = simulated(self.device.id)
        if sim.unreachable:
            raise DeviceUnreachable(f"virtual device {self.device.id} does not answer")
        for prop in self.device.properties:
            sim.values.setdefault(prop.name, _initial(prop))
        self._sim = sim

    async def close(self) -> None:
        self._sim = None

    async def _io(self) -> SimulatedDevice:
        # Every exchange with a device can fail; a real plugin translates its library's errors here.
        if self._sim is None or self._sim.unreachable:
            raise DeviceUnreachable(f"virtual device {self.device.id} does not answer")
        if self.device.config.latencyMs:
            await asyncio.sleep(self.device.config.latencyMs / 1000)
        return self._sim

    async def read(self, prop: MappedProperty[VirtualVisitor]) -> Value:
        sim = await self._io()
        sim.reads += 1
        value = sim.values.get(prop.name, _initial(prop))
        if prop.config.step and isinstance(value, int | float) and not isinstance(value, bool):
            sim.values[prop.name] = value + (
                int(prop.config.step) if isinstance(value, int) else prop.config.step
            )
        return value

    async def write(self, prop: MappedProperty[VirtualVisitor], value: Value) -> None:
        sim = await self._io()
        reason = sim.refuse.get(prop.name)
        if reason is not None:
            raise DeviceRefused(f"virtual device {self.device.id} refused {prop.name}={value!r}: {reason}")
        sim.values[prop.name] = value
        sim.writes.append((prop.name, value))
