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

    def turn(self) -> _Turn:
        """Hold the bus for one exchange (``async with bus.turn():``); waits out the inter-frame gap."""
        return _Turn(self)


class _Turn:
    # A plain class rather than @asynccontextmanager: it runs once per Modbus request.
    __slots__ = ("_bus",)

    def __init__(self, bus: Bus) -> None:
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
