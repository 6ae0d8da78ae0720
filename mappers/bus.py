"""One lock, one inter-frame gap and one shared connection per physical bus.

Several devices can hang on one link: slaves 1..n on an RS-485 port, or PLCs behind one Modbus TCP
gateway that serves one request at a time. Each device has its own worker, so the workers must take
turns on the link, and a serial line needs a quiet gap between frames (3.5 character times for
Modbus RTU). Plugins ``attach`` to a ``Bus`` by a key that names the link (the serial port, or
``host:port``); the first user makes the link's shared connection (``Bus.resource``, typed by the
plugin) and the last one to ``detach`` gets it back to close (Home Assistant's ``ModbusHub`` keeps
one lock per hub the same way).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Bus", "Buses"]

R = TypeVar("R")


class Bus(Generic[R]):
    """A physical link: take a ``turn()`` for each request/response exchange."""

    def __init__(self, key: str, resource: R, *, frame_gap: float = 0.0) -> None:
        self.key = key
        self.frame_gap = frame_gap
        self.users = 0
        #: The link's shared connection (a client object), made by the plugin's factory.
        self.resource: R = resource
        self._lock = asyncio.Lock()
        self._last_frame = -math.inf

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def turn(self) -> _Turn:
        """Hold the bus for one exchange (``async with bus.turn():``); waits out the inter-frame gap."""
        return _Turn(self)


class _Turn:
    # A plain class rather than @asynccontextmanager: it runs once per Modbus request.
    __slots__ = ("_bus",)

    def __init__(self, bus: Bus[Any]) -> None:
        self._bus = bus

    async def __aenter__(self) -> None:
        bus = self._bus
        await bus._lock.acquire()
        if bus.frame_gap > 0:
            wait = bus._last_frame + bus.frame_gap - asyncio.get_running_loop().time()
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except BaseException:
                    bus._lock.release()
                    raise

    async def __aexit__(self, *exc_info: object) -> None:
        bus = self._bus
        if bus.frame_gap > 0:
            bus._last_frame = asyncio.get_running_loop().time()
        bus._lock.release()


class Buses:
    """The buses of one runner, by key, counted by users."""

    def __init__(self) -> None:
        self._buses: dict[str, Bus[Any]] = {}

    def attach(self, key: str, factory: Callable[[], R], *, frame_gap: float = 0.0) -> Bus[R]:
        """The bus ``key``; its first user makes the shared resource with ``factory()``.

        ``key`` names the link and starts with the protocol (``modbus:tcp:10.0.0.1:502``), so two
        plugins never share a bus, and a resource, by accident.
        """
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = Bus(key, factory(), frame_gap=frame_gap)
        else:
            # Devices on one bus may disagree; the slowest wins.
            bus.frame_gap = max(bus.frame_gap, frame_gap)
        bus.users += 1
        return bus

    def detach(self, bus: Bus[R]) -> R | None:
        """Drop one user; the resource when it was the last one (the caller closes it), else ``None``."""
        bus.users -= 1
        if bus.users > 0:
            return None
        if self._buses.get(bus.key) is bus:
            del self._buses[bus.key]
        return bus.resource

    def __contains__(self, key: str) -> bool:
        return key in self._buses
