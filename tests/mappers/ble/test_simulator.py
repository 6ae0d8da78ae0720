"""The simulated adapter through bleak's public API: what the mapper relies on, as real hardware does."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from mappers.ble.sample import DISPLAY, READINGS, SAMPLE_ADDRESS, SAMPLE_NAME, readings, sample_peripheral
from mappers.ble.simulator import (
    SimulatedAdapter,
    SimulatedCharacteristic,
    SimulatedClient,
    SimulatedPeripheral,
    SimulatedScanner,
    SimulatedService,
    Write,
)

CONTROL = "0000fff1-0000-1000-8000-00805f9b34fb"


def _client(address: str = SAMPLE_ADDRESS, **kwargs: object) -> BleakClient:
    return BleakClient(address, backend=SimulatedClient, **kwargs)  # type: ignore[arg-type]


async def test_scanner_finds_peripherals_in_range_by_address_and_name(ble_adapter: SimulatedAdapter) -> None:
    ble_adapter.add(sample_peripheral())
    far = ble_adapter.add(SimulatedPeripheral("11:22:33:44:55:66", "far"))
    far.leave()
    found = await BleakScanner.discover(timeout=0.05, backend=SimulatedScanner, return_adv=True)
    assert list(found) == [SAMPLE_ADDRESS]
    device, adv = found[SAMPLE_ADDRESS]
    assert (device.name, adv.local_name, adv.rssi) == (SAMPLE_NAME, SAMPLE_NAME, -60)
    by_name = await BleakScanner.find_device_by_name(SAMPLE_NAME, timeout=1, backend=SimulatedScanner)
    assert by_name is not None and by_name.address == SAMPLE_ADDRESS
    assert await BleakScanner.find_device_by_name("far", timeout=0.05, backend=SimulatedScanner) is None


async def test_a_peripheral_coming_in_range_during_a_scan_is_found(ble_adapter: SimulatedAdapter) -> None:
    peripheral = sample_peripheral()
    peripheral.leave()
    ble_adapter.add(peripheral)
    search = asyncio.create_task(
        BleakScanner.find_device_by_address(SAMPLE_ADDRESS, timeout=5, backend=SimulatedScanner)
    )
    await asyncio.sleep(0.01)
    assert not search.done()
    peripheral.come_back()
    device = await search
    assert device is not None and device.address == SAMPLE_ADDRESS


async def test_read_write_and_notify_through_bleak_client(ble_adapter: SimulatedAdapter) -> None:
    peripheral = ble_adapter.add(sample_peripheral())
    async with _client() as client:
        assert client.is_connected and client.name == SAMPLE_NAME
        assert await client.read_gatt_char(READINGS) == readings(21.5, 45)
        await client.write_gatt_char(DISPLAY, b"\x00", response=True)
        assert peripheral.value(DISPLAY) == b"\x00"
        assert peripheral.writes == [Write(DISPLAY, b"\x00", True)]
        received: asyncio.Queue[bytes] = asyncio.Queue()

        def on_notify(_: BleakGATTCharacteristic, data: bytearray) -> None:
            received.put_nowait(bytes(data))

        await client.start_notify(READINGS, on_notify)
        peripheral.set(READINGS, readings(22.0, 50))
        assert await asyncio.wait_for(received.get(), 5) == readings(22.0, 50)
        char = client.services.get_characteristic(READINGS)
        assert char is not None and char.properties == ["read", "notify"]
        assert [d.uuid for d in char.descriptors] == ["00002902-0000-1000-8000-00805f9b34fb"]
        assert ble_adapter.connections == 1
    assert ble_adapter.connections == 0 and ble_adapter.peak == 1


async def test_characteristic_properties_are_enforced_like_a_real_gatt_server(
    ble_adapter: SimulatedAdapter,
) -> None:
    ble_adapter.add(
        SimulatedPeripheral(
            "11:22:33:44:55:66",
            "plug",
            [SimulatedService("fff0", [SimulatedCharacteristic(CONTROL, ("write-without-response",))])],
        )
    )
    async with _client("11:22:33:44:55:66") as client:
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.read_gatt_char(CONTROL)
        assert refused.value.code is BleakGATTProtocolErrorCode.READ_NOT_PERMITTED
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(CONTROL, b"\x01", response=True)
        assert refused.value.code is BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED
        await client.write_gatt_char(CONTROL, b"\x01", response=False)
        with pytest.raises(BleakError, match="does not notify"):
            await client.start_notify(CONTROL, lambda _c, _d: None)


async def test_out_of_range_drops_the_link_and_calls_the_disconnected_callback(
    ble_adapter: SimulatedAdapter,
) -> None:
    peripheral = ble_adapter.add(sample_peripheral())
    dropped = asyncio.Event()
    client = _client(disconnected_callback=lambda _: dropped.set())
    await client.connect()
    peripheral.leave()
    await asyncio.wait_for(dropped.wait(), 5)
    assert not client.is_connected and ble_adapter.connections == 0
    with pytest.raises(BleakError):
        await client.read_gatt_char(READINGS)
    with pytest.raises(BleakDeviceNotFoundError):
        await _client().connect()
    peripheral.come_back()
    async with _client() as again:
        assert await again.read_gatt_char(READINGS) == readings(21.5, 45)


async def test_adapter_with_a_capacity_refuses_one_connection_too_many(ble_adapter: SimulatedAdapter) -> None:
    ble_adapter.capacity = 1
    ble_adapter.add(sample_peripheral())
    ble_adapter.add(sample_peripheral("A4:C1:38:00:00:02"))
    async with _client():
        with pytest.raises(BleakError, match="connection limit"):
            await _client("A4:C1:38:00:00:02").connect()
    async with _client("A4:C1:38:00:00:02") as second:
        assert second.is_connected
