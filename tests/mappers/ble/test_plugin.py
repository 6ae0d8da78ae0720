"""The BLE plugin against simulated peripherals through bleak, without a broker: reads, writes, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mappers.ble.errors import (
    CharacteristicNotFound,
    ConnectionLost,
    LayoutMismatch,
    NotWritable,
    PeripheralNotFound,
)
from mappers.ble.plugin import BleMapper
from mappers.ble.sample import DISPLAY, READINGS, SAMPLE_ADDRESS, SAMPLE_NAME, readings, sample_peripheral
from mappers.ble.simulator import (
    SimulatedAdapter,
    SimulatedCharacteristic,
    SimulatedPeripheral,
    SimulatedService,
    Write,
)
from mappers.bus import Buses
from mappers.plugin import ReadResult
from tests.mappers.builders import device, mapped, model
from twin.errors import DeviceUnreachable, OutOfRange

SIM = {"macAddress": SAMPLE_ADDRESS, "adapter": "simulated"}
TEMPERATURE = {
    "characteristicUUID": READINGS,
    "dataConverter": {"startIndex": 0, "endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
}
HUMIDITY = {"characteristicUUID": READINGS, "dataConverter": {"startIndex": 2, "endIndex": 2}}
DISPLAY_VISITOR = {
    "characteristicUUID": DISPLAY,
    "dataWrite": {"true": "01", "false": "00"},
    "dataConverter": {"startIndex": 0, "endIndex": 0},
}
THERMOMETER = model(
    "thermometer",
    "ble",
    {"temperature": "FLOAT", "humidity": "INT", "display": "BOOLEAN", "battery": "INT", "config": "INT"},
    read_only=("temperature", "humidity", "battery"),
)
CONFIG = "0000fff1-0000-1000-8000-00805f9b34fb"
CONTROL = "0000fff2-0000-1000-8000-00805f9b34fb"


def mapper(protocol: dict[str, Any] = SIM, /, **visitors: dict[str, Any]) -> BleMapper:
    dev = device("thermo", "thermometer", "ble", protocol, visitors or {"temperature": TEMPERATURE})
    return BleMapper(mapped(dev, THERMOMETER, BleMapper), Buses())


@pytest.fixture
async def thermometer(ble_adapter: SimulatedAdapter) -> AsyncIterator[SimulatedPeripheral]:
    peripheral = sample_peripheral()
    peripheral.services.append(
        SimulatedService(
            "fff0",
            [
                SimulatedCharacteristic(CONFIG, ("read", "write"), b"\xaa\x00\x00\xbb"),
                SimulatedCharacteristic(CONTROL, ("write-without-response",)),
            ],
        )
    )
    yield ble_adapter.add(peripheral)


def values(results: dict[str, ReadResult]) -> dict[str, object]:
    return {name: type(r).__name__ if isinstance(r, Exception) else r for name, r in results.items()}


async def test_properties_sharing_a_characteristic_are_read_with_one_gatt_read(
    thermometer: SimulatedPeripheral,
) -> None:
    ble = mapper(temperature=TEMPERATURE, humidity=HUMIDITY, display=DISPLAY_VISITOR)
    async with ble:
        reads = thermometer.reads
        results = await ble.read_many(ble.device.properties)
        assert values(results) == {"temperature": 21.5, "humidity": 45, "display": True}
        assert thermometer.reads == reads + 2  # readings once for two properties, display once


async def test_notifying_characteristics_are_pushed_unless_the_visitor_says_not_to(
    thermometer: SimulatedPeripheral,
) -> None:
    polled = {**HUMIDITY, "notify": False}
    ble = mapper(temperature=TEMPERATURE, humidity=polled, display=DISPLAY_VISITOR)
    async with ble:
        pushed = [p.name for p in ble.device.properties if ble.pushes(p)]
        assert pushed == ["temperature"]


async def test_watch_yields_notified_values_and_ends_when_the_peripheral_leaves(
    thermometer: SimulatedPeripheral,
) -> None:
    ble = mapper(temperature=TEMPERATURE, humidity=HUMIDITY)
    async with ble:
        stream = ble.watch(ble.device.properties)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)  # subscribed
        thermometer.set(READINGS, readings(-3.25, 60))
        got = [await asyncio.wait_for(first, 5), await asyncio.wait_for(anext(stream), 5)]
        assert got == [("temperature", -3.25), ("humidity", 60)]
        thermometer.set(READINGS, b"\x01")  # too short for both layouts: a named error each
        failed = [await asyncio.wait_for(anext(stream), 5) for _ in range(2)]
        assert [(n, type(e)) for n, e in failed] == [
            ("temperature", LayoutMismatch),
            ("humidity", LayoutMismatch),
        ]
        thermometer.leave()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(anext(stream), 5)
        with pytest.raises(ConnectionLost):
            await ble.read_many(ble.device.properties)


async def test_a_characteristic_the_device_lacks_fails_alone(thermometer: SimulatedPeripheral) -> None:
    missing = {"characteristicUUID": "0000beef-0000-1000-8000-00805f9b34fb"}
    ble = mapper(temperature=TEMPERATURE, battery=missing)
    async with ble:
        results = await ble.read_many(ble.device.properties)
        assert values(results) == {"temperature": 21.5, "battery": "CharacteristicNotFound"}
        assert "has no characteristic 0000beef-" in str(results["battery"])
        prop = ble.device.property("battery")
        assert prop is not None
        with pytest.raises(CharacteristicNotFound):
            await ble.write(prop, 5)


async def test_a_layout_past_the_end_of_the_data_fails_alone(thermometer: SimulatedPeripheral) -> None:
    too_far = {"characteristicUUID": READINGS, "dataConverter": {"startIndex": 4, "endIndex": 7}}
    ble = mapper(temperature=TEMPERATURE, battery=too_far)
    async with ble:
        results = await ble.read_many(ble.device.properties)
        assert values(results) == {"temperature": 21.5, "battery": "LayoutMismatch"}
        assert "bytes 4..7 asked for, the characteristic holds 5 byte(s)" in str(results["battery"])


async def test_desired_values_map_through_data_write(thermometer: SimulatedPeripheral) -> None:
    ble = mapper(display=DISPLAY_VISITOR)
    async with ble:
        (display,) = ble.device.properties
        await ble.write(display, False)
        assert thermometer.writes == [Write(DISPLAY, b"\x00", True)]
        assert await ble.read(display) is False


async def test_a_value_data_write_does_not_list_is_refused(thermometer: SimulatedPeripheral) -> None:
    ble = mapper(config={"characteristicUUID": CONFIG, "dataWrite": {"ECO": [1], "BOOST": [2]}})
    async with ble:
        (prop,) = ble.device.properties
        with pytest.raises(OutOfRange, match="none of the values dataWrite lists"):
            await ble.write(prop, 3)
        assert thermometer.writes == []


async def test_a_write_to_a_read_only_characteristic_is_not_writable(
    thermometer: SimulatedPeripheral,
) -> None:
    ble = mapper(temperature=TEMPERATURE)
    async with ble:
        (prop,) = ble.device.properties
        with pytest.raises(NotWritable, match=r"has no write property \(it offers: notify, read\)"):
            await ble.write(prop, 20.0)
        assert thermometer.writes == []


async def test_write_with_response_only_where_offered_unless_the_visitor_says(
    thermometer: SimulatedPeripheral,
) -> None:
    auto = mapper(config={"characteristicUUID": CONTROL, "dataConverter": {"length": 1}})
    async with auto:
        (prop,) = auto.device.properties
        await auto.write(prop, 7)
    forced = mapper(config={"characteristicUUID": CONTROL, "writeWithResponse": True})
    async with forced:
        (prop,) = forced.device.properties
        with pytest.raises(NotWritable, match="with response"):
            await forced.write(prop, True)
    assert thermometer.writes == [Write(CONTROL, b"\x07", False)]


async def test_a_write_only_characteristic_reports_what_was_last_written(
    thermometer: SimulatedPeripheral,
) -> None:
    ble = mapper(config={"characteristicUUID": CONTROL, "dataConverter": {"length": 1}})
    async with ble:
        (prop,) = ble.device.properties
        assert await ble.read_many([prop]) == {}  # nothing to report before a write
        await ble.write(prop, 9)
        assert await ble.read_many([prop]) == {"config": 9}


async def test_one_value_of_a_multi_value_characteristic_keeps_the_other_bytes(
    thermometer: SimulatedPeripheral,
) -> None:
    ble = mapper(config={"characteristicUUID": CONFIG, "dataConverter": {"startIndex": 1, "length": 2}})
    async with ble:
        (prop,) = ble.device.properties
        await ble.write(prop, 0x1234)
        assert thermometer.value(CONFIG) == b"\xaa\x12\x34\xbb"
        assert await ble.read(prop) == 0x1234


async def test_a_peripheral_out_of_range_is_not_found(thermometer: SimulatedPeripheral) -> None:
    thermometer.leave()
    with pytest.raises(PeripheralNotFound, match="A4:C1:38:00:00:01 is not advertising"):
        async with mapper({**SIM, "timeout": 50}):
            pass


async def test_a_peripheral_is_found_by_its_advertised_name(thermometer: SimulatedPeripheral) -> None:
    ble = mapper({"localName": SAMPLE_NAME, "adapter": "simulated"})
    async with ble:
        assert values(await ble.read_many(ble.device.properties)) == {"temperature": 21.5}
    with pytest.raises(PeripheralNotFound, match="'nobody' is not advertising"):
        async with mapper({"localName": "nobody", "adapter": "simulated", "timeout": 50}):
            pass


async def test_without_a_bluetooth_stack_the_default_adapter_is_unreachable_with_the_reason(
    ble_adapter: SimulatedAdapter,
) -> None:
    with pytest.raises(DeviceUnreachable, match="A4:C1:38:00:00:01"):
        async with mapper({"macAddress": SAMPLE_ADDRESS, "timeout": 500}):
            pass
    assert ble_adapter.connects == 0
