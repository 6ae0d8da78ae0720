"""The ``gpio`` mapper plugin: each property is one pin (an LED, a relay, a PWM output, a button).

Outputs are written from desired values and read back; inputs are pushed on every edge
(``pushes``/``watch``), so nothing is polled. A pin that cannot be opened (in use, not on this board)
fails its own property, named in the device's state; the device's other pins work, and the pin is
tried again at every ``collectCycle`` until it opens. With mock pins every change is logged, so a
laptop user sees the "LED" switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from mappers.gpio.config import GpioConfig, GpioVisitor, pin_mode
from mappers.gpio.errors import InputPinNotWritable
from mappers.gpio.factory import is_mock, pin_factory
from mappers.gpio.pins import GpioPin, InputPin, OutputPin, PwmPin, open_pin
from mappers.gpio.values import (
    describe_duty,
    describe_level,
    duty_value,
    level_value,
    parse_duty,
    parse_level,
)
from mappers.plugin import MappedProperty, Mapper
from twin.errors import PermanentError
from twin.models import PropertyType
from twin.values import Value

__all__ = ["GpioMapper"]

log = logging.getLogger(__name__)

Prop = MappedProperty[GpioVisitor]


class GpioMapper(Mapper[GpioConfig, GpioVisitor]):
    protocol = "gpio"
    protocol_config = GpioConfig
    visitor_config = GpioVisitor

    _pins: dict[str, GpioPin]
    _pushed: frozenset[str] = frozenset()

    async def connect(self) -> None:
        self._pins = {}
        self._spelling: dict[str, str] = {}  # STRING property -> the on/off word last written
        self._factory: Any = pin_factory(self.device.config.pinFactory)
        self._mock = is_mock(self._factory)
        self._loop = asyncio.get_running_loop()
        # Edges from gpiozero's threads, queued from connect on so that none is lost before ``watch``.
        self._edges: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        for prop in self.device.properties:
            try:
                self._open(prop)
            except PermanentError as exc:
                # Reported by the first read of the property (the device's state names it).
                log.debug("%s: %s: %s", self.device.id, prop.name, exc)
        self._pushed = frozenset(self._pins)
        for name, pin in self._pins.items():
            if isinstance(pin, InputPin):
                pin.listen(functools.partial(self._edge, name))

    async def close(self) -> None:
        pins, self._pins = getattr(self, "_pins", {}), {}
        for pin in pins.values():
            pin.close()

    def pushes(self, prop: Prop) -> bool:
        # Pins opened at connect: inputs report their edges, outputs change only when written (and
        # are read back then). A pin that opened later is polled, as ``watch`` did not get it.
        return prop.name in self._pushed

    async def watch(self, props: Sequence[Prop]) -> AsyncIterator[tuple[str, Value]]:
        types = {p.name: p.type for p in props}
        while True:
            name, level = await self._edges.get()
            ptype = types.get(name)
            if ptype is None:
                continue
            if self._mock:
                pin = self._pins.get(name)
                where = pin.name if pin is not None else "its pin"
                state = describe_level(level)
                log.info("%s: %s on %s is now %s (mock pin)", self.device.id, name, where, state)
            yield name, level_value(level, ptype)

    async def read(self, prop: Prop) -> Value:
        pin = self._pin(prop)
        if isinstance(pin, PwmPin):
            return duty_value(pin.duty, prop.type)
        assert isinstance(pin, OutputPin | InputPin)
        level = pin.level
        if prop.type is PropertyType.STRING:
            written = self._spelling.get(prop.name)
            if written is not None and parse_level(written, prop.type) == level:
                return written  # "on" reads back as "on", so desired and reported agree
        return level_value(level, prop.type)

    async def write(self, prop: Prop, value: Value) -> None:
        pin = self._pin(prop)
        if isinstance(pin, InputPin):
            raise InputPinNotWritable(
                f"{prop.name} is an input on {pin.name} (a button or sensor): it cannot be set"
            )
        if isinstance(pin, PwmPin):
            duty = parse_duty(value, prop.type)
            pin.set(duty)
            state = describe_duty(duty)
        else:
            assert isinstance(pin, OutputPin)
            level = parse_level(value, prop.type)
            pin.set(level)
            if isinstance(value, str):
                self._spelling[prop.name] = value
            state = describe_level(level)
        log.log(
            logging.INFO if self._mock else logging.DEBUG,
            "%s: %s on %s is now %s%s",
            self.device.id,
            prop.name,
            pin.name,
            state,
            " (mock pin)" if self._mock else "",
        )

    # -- pins --------------------------------------------------------------------------------------

    def _pin(self, prop: Prop) -> GpioPin:
        pin = self._pins.get(prop.name)
        if pin is None:
            pin = self._open(prop)  # raises why it still cannot be opened
            log.info("%s: %s: %s is open now", self.device.id, prop.name, pin.name)
        return pin

    def _open(self, prop: Prop) -> GpioPin:
        mode = pin_mode(prop.config, prop.type, prop.writable)
        spec = prop.config.pin_spec(self.device.config.pinNumbering)
        pin = open_pin(self._factory, spec, mode, prop.config, f"{self.device.id} ({prop.name})")
        self._pins[prop.name] = pin
        return pin

    def _edge(self, name: str, level: bool) -> None:
        """Called in gpiozero's thread: hand the edge to the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the mapper has stopped
            self._loop.call_soon_threadsafe(self._edges.put_nowait, (name, level))
