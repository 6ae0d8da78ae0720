"""bleak backends for simulated BLE peripherals: bleak's own ``backend=`` hook, in this process.

Tests, demos and ``make run`` need BLE sensors that are not there. bleak chooses its platform
backend (BlueZ over D-Bus on Linux) unless ``BleakClient(..., backend=Cls)`` /
``BleakScanner(..., backend=Cls)`` name another; ``SimulatedClient`` and ``SimulatedScanner`` are
such backends, so the mapper under test still calls bleak's public API (``BleakClient.connect``,
``read_gatt_char``, ``start_notify``...) exactly as against real hardware.

They serve the peripherals of ``mappers.ble.peripherals`` (re-exported here): GATT tables with
read, write (with or without response) and notify, taken out of range and back. A device selects
them with ``adapter: simulated`` in its ``configData`` (or every device of a process, with
``EDGETWIN_BLE_ADAPTER=simulated``). ``mappers.ble.sample.serve_sample`` serves the sample
thermometer of ``crds/samples/ble.yaml``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from mappers.ble.config import normalize_uuid
from mappers.ble.peripherals import (
    ADAPTER,
    SimulatedAdapter,
    SimulatedCharacteristic,
    SimulatedPeripheral,
    SimulatedService,
    Write,
    deliver,
)

__all__ = [
    "ADAPTER",
    "SimulatedAdapter",
    "SimulatedCharacteristic",
    "SimulatedClient",
    "SimulatedPeripheral",
    "SimulatedScanner",
    "SimulatedService",
    "Write",
]

_CCCD = normalize_uuid("2902")


class SimulatedClient(BaseBleakClient):
    """bleak's client backend for ``ADAPTER``: ``BleakClient(address, backend=SimulatedClient)``."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._peripheral: SimulatedPeripheral | None = None
        self._subscribed: dict[str, NotifyCallback] = {}

    @property
    def name(self) -> str:
        peripheral = ADAPTER.find(self.address)
        if peripheral is not None and peripheral.name:
            return peripheral.name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return 247

    @property
    def is_connected(self) -> bool:
        return self._peripheral is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await asyncio.sleep(0)  # connecting takes a radio exchange, never zero steps
        peripheral = ADAPTER.find(self.address)
        if peripheral is None or not peripheral.in_range:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        if not ADAPTER._connected():
            raise BleakError(f"simulated adapter: connection limit exceeded ({ADAPTER.capacity} connections)")
        self._peripheral = peripheral
        peripheral._clients.add(self)
        self.services = _gatt(peripheral)

    def _release(self) -> SimulatedPeripheral | None:
        peripheral, self._peripheral = self._peripheral, None
        if peripheral is not None:
            peripheral._clients.discard(self)
            ADAPTER._disconnected()
            self._subscribed.clear()
            self.services = None
        return peripheral

    def _drop(self) -> None:
        """The link broke (out of range): bleak's ``disconnected_callback`` fires, as BlueZ's does."""
        if self._release() is not None and self._disconnected_callback is not None:
            deliver(self._disconnected_callback)

    async def disconnect(self) -> None:
        # BlueZ calls the disconnected callback after a requested disconnect too; so does this.
        self._drop()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _char(self, characteristic: BleakGATTCharacteristic) -> SimulatedCharacteristic:
        if self._peripheral is None:
            raise BleakError("Not connected")
        char = characteristic.obj
        assert isinstance(char, SimulatedCharacteristic)
        return char

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        char = self._char(characteristic)
        await asyncio.sleep(0)
        if self._peripheral is None:
            raise BleakError("Not connected")
        if "read" not in char.properties:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)
        self._peripheral.reads += 1
        return bytearray(char.value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        if self._peripheral is None:
            raise BleakError("Not connected")
        subscribed = descriptor.characteristic_uuid in self._subscribed
        return bytearray(b"\x01\x00" if subscribed else b"\x00\x00")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        char = self._char(characteristic)
        await asyncio.sleep(0)
        if self._peripheral is None:
            raise BleakError("Not connected")
        needed = "write" if response else "write-without-response"
        if needed not in char.properties:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)
        self._peripheral._written(char, bytes(data), response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        char = self._char(characteristic)
        if "notify" not in char.properties and "indicate" not in char.properties:
            raise BleakError(f"characteristic {char.uuid} does not notify")
        self._subscribed[char.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._subscribed.pop(self._char(characteristic).uuid, None)

    def _notify(self, char: SimulatedCharacteristic) -> None:
        callback = self._subscribed.get(char.uuid)
        if callback is not None:
            deliver(callback, bytearray(char.value))


def _gatt(peripheral: SimulatedPeripheral) -> BleakGATTServiceCollection:
    """The peripheral's GATT table as bleak's service discovery returns it."""
    collection = BleakGATTServiceCollection()
    handle = 0
    for sim_service in peripheral.services:
        handle += 1
        service = BleakGATTService(sim_service, handle, sim_service.uuid)
        collection.add_service(service)
        for char in sim_service.characteristics:
            handle += 2  # a declaration and a value handle, as on a real server
            properties = cast(list[CharacteristicPropertyName], list(char.properties))
            gatt_char = BleakGATTCharacteristic(char, handle, char.uuid, properties, lambda: 244, service)
            collection.add_characteristic(gatt_char)
            if "notify" in char.properties or "indicate" in char.properties:
                handle += 1
                collection.add_descriptor(BleakGATTDescriptor(None, handle, _CCCD, gatt_char))
    return collection


class SimulatedScanner(BaseBleakScanner):
    """bleak's scanner backend for ``ADAPTER``: peripherals in range advertise while it scans."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        ADAPTER._scanners.add(self)
        for peripheral in list(ADAPTER.peripherals.values()):
            deliver(self._advertise, peripheral)

    async def stop(self) -> None:
        ADAPTER._scanners.discard(self)

    def _advertise(self, peripheral: SimulatedPeripheral) -> None:
        if self not in ADAPTER._scanners or not peripheral.in_range:
            return
        advertisement = AdvertisementData(
            local_name=peripheral.name,
            manufacturer_data={},
            service_data={},
            service_uuids=list(peripheral.advertised),
            tx_power=None,
            rssi=peripheral.rssi,
            platform_data=(),
        )
        if not self.is_allowed_uuid(advertisement.service_uuids):
            return
        device = self.create_or_update_device(
            peripheral.address, peripheral.address, peripheral.name, peripheral, advertisement
        )
        self.call_detection_callbacks(device, advertisement)
