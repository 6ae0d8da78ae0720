"""The simulated BLE peripherals of this process: GATT tables, range, and what was written to them.

A ``SimulatedPeripheral`` has services with characteristics that can be read, written (with or
without response) and notify; it can be taken out of range (its connections drop, as a real link
does) and brought back. ``ADAPTER``, the one simulated radio of the process, holds the peripherals
in range and counts connections (and their peak), refusing more than its ``capacity`` as a real
adapter does. bleak reaches them through the backend classes of ``mappers.ble.simulator``; tests
and the sample (``mappers.ble.sample``) set values and watch writes here. Pure: no bleak.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mappers.ble.config import normalize_uuid

__all__ = [
    "ADAPTER",
    "SimulatedAdapter",
    "SimulatedCharacteristic",
    "SimulatedPeripheral",
    "SimulatedService",
    "Write",
    "deliver",
]


class _Link(Protocol):
    """A connected simulated client, as a peripheral reaches it."""

    def _notify(self, char: SimulatedCharacteristic) -> None: ...

    def _drop(self) -> None: ...


class _Listener(Protocol):
    """A running simulated scanner, as the adapter reaches it."""

    def _advertise(self, peripheral: SimulatedPeripheral) -> None: ...


def deliver(callback: Callable[..., None], *args: Any) -> None:
    """Deliver as a radio event would: on the event loop, after the caller's step."""
    try:
        asyncio.get_running_loop().call_soon(callback, *args)
    except RuntimeError:  # no loop running (set up from synchronous code)
        callback(*args)


@dataclass
class SimulatedCharacteristic:
    uuid: str
    #: bleak's names: read, write, write-without-response, notify, indicate.
    properties: tuple[str, ...] = ("read",)
    value: bytes = b""

    def __post_init__(self) -> None:
        self.uuid = normalize_uuid(self.uuid)
        self.value = bytes(self.value)


@dataclass
class SimulatedService:
    uuid: str
    characteristics: list[SimulatedCharacteristic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.uuid = normalize_uuid(self.uuid)


@dataclass(frozen=True)
class Write:
    uuid: str
    data: bytes
    response: bool


class SimulatedPeripheral:
    """A BLE peripheral: its GATT table, whether it is in range, and what was written to it."""

    def __init__(
        self,
        address: str,
        name: str | None = None,
        services: Iterable[SimulatedService] = (),
        *,
        rssi: int = -60,
        advertised: Iterable[str] = (),
    ) -> None:
        self.address = address.upper()
        self.name = name
        self.services = list(services)
        self.rssi = rssi
        self.advertised = [normalize_uuid(u) for u in advertised]
        self.in_range = True
        self.writes: list[Write] = []
        self.reads = 0
        #: Called with (uuid, data) after each accepted write: a peripheral's own reaction.
        self.on_write: Callable[[str, bytes], None] | None = None
        self._clients: set[_Link] = set()
        self._adapter: SimulatedAdapter | None = None

    def characteristic(self, uuid: str) -> SimulatedCharacteristic:
        wanted = normalize_uuid(uuid)
        for service in self.services:
            for char in service.characteristics:
                if char.uuid == wanted:
                    return char
        raise KeyError(f"{self.address} has no characteristic {wanted}")

    def value(self, uuid: str) -> bytes:
        return self.characteristic(uuid).value

    def set(self, uuid: str, data: bytes) -> None:
        """Change a characteristic's value (as the device's sensor would) and notify subscribers."""
        char = self.characteristic(uuid)
        char.value = bytes(data)
        for client in list(self._clients):
            client._notify(char)

    @property
    def connections(self) -> int:
        return len(self._clients)

    def leave(self) -> None:
        """Go out of range: every connection drops and the peripheral stops advertising."""
        self.in_range = False
        for client in list(self._clients):
            client._drop()

    def come_back(self) -> None:
        """Back in range: advertising again, connectable."""
        self.in_range = True
        if self._adapter is not None:
            self._adapter._advertise(self)

    def _written(self, char: SimulatedCharacteristic, data: bytes, response: bool) -> None:
        char.value = data
        self.writes.append(Write(char.uuid, data, response))
        if self.on_write is not None:
            self.on_write(char.uuid, data)


class SimulatedAdapter:
    """The simulated radio: the peripherals in range of this process, and connection counts."""

    def __init__(self) -> None:
        self.peripherals: dict[str, SimulatedPeripheral] = {}
        #: Connections it accepts at once (None: as many as asked), like a real adapter's limit.
        self.capacity: int | None = None
        self.connections = 0
        self.peak = 0
        self.connects = 0
        self._scanners: set[_Listener] = set()

    def add(self, peripheral: SimulatedPeripheral) -> SimulatedPeripheral:
        self.peripherals[peripheral.address] = peripheral
        peripheral._adapter = self
        self._advertise(peripheral)
        return peripheral

    def remove(self, peripheral: SimulatedPeripheral) -> None:
        peripheral.leave()
        if self.peripherals.get(peripheral.address) is peripheral:
            del self.peripherals[peripheral.address]
        peripheral._adapter = None

    def reset(self) -> None:
        """Forget every peripheral and count (between tests)."""
        for peripheral in list(self.peripherals.values()):
            self.remove(peripheral)
        self.capacity = None
        self.connections = self.peak = self.connects = 0

    def find(self, address: str) -> SimulatedPeripheral | None:
        return self.peripherals.get(address.upper())

    def _advertise(self, peripheral: SimulatedPeripheral) -> None:
        for scanner in list(self._scanners):
            deliver(scanner._advertise, peripheral)

    def _connected(self) -> bool:
        """Count a new connection; ``False`` when the adapter has no room for it."""
        if self.capacity is not None and self.connections >= self.capacity:
            return False
        self.connections += 1
        self.connects += 1
        self.peak = max(self.peak, self.connections)
        return True

    def _disconnected(self) -> None:
        self.connections -= 1


#: The simulated radio of this process.
ADAPTER = SimulatedAdapter()
