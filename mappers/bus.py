"""One lock and one inter-frame gap per physical bus.

Several devices can hang on one link: slaves 1..n on an RS-485 port, or PLCs behind one Modbus TCP
gateway that serves one request at a time. Each device has its own worker, so the workers must take
turns on the link, and a serial line needs a quiet gap between frames (3.5 character times for
Modbus RTU). Plugins ``attach`` to a ``Bus`` by a key that names the link (the serial port, or
``host:port``) and keep the link's shared connection in ``Bus.resource`` (Home Assistant's
``ModbusHub`` does the same with one lock per hub).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["Bus", "Buses"]


class Bus:
    """A physical link: take a ``turn()`` for each request/response exchange."""

    def __init__(self, key: str, *, frame_gap: float = 0.0) -> None:
        self.key = key
        self.frame_gap = frame_gap
        self.users = 0
        # The link's shared connection (a client object), owned by the plugin that made it.
        self.resource: object | None = None
        self._lock = asyncio.Lock()
        self._last_frame = -math.inf

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the bus for one exchange; waits for the inter-frame gap after the previous one."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._last_frame + self.frame_gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last_frame = loop.time()


class Buses:
    """The buses of one runner, by key, counted by users."""

    def __init__(self) -> None:
        self._buses: dict[str, Bus] = {}

    def attach(self, key: str, *, frame_gap: float = 0.0) -> Bus:
        bus = self._buses.get(key)
        if bus is None:
            bus = self._buses[key] = Bus(key, frame_gap=frame_gap)
        else:
            # Devices on one bus may disagree; the slowest wins.
            bus.frame_gap = max(bus.frame_gap, frame_gap)
        bus.users += 1
        return bus

    def detach(self, bus: Bus) -> bool:
        """Drop one user; ``True`` when it was the last one (the caller closes ``bus.resource``)."""
        bus.users -= 1
        if bus.users > 0:
            return False
        if self._buses.get(bus.key) is bus:
            del self._buses[bus.key]
        return True

    def __contains__(self, key: str) -> bool:
        return key in self._buses
