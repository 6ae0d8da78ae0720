"""BLE devices end to end: simulated peripheral <-> bleak <-> mapper runner <-> twin, over mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest

from mappers.ble.sample import DISPLAY, READINGS, readings, sample_peripheral, serve_sample
from mappers.ble.simulator import SimulatedAdapter, SimulatedPeripheral, Write
from tests.fixtures.brokers import Mosquitto
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import Stack, mapper_stack, until
from twin.client import TwinClient
from twin.manifests import load_manifests
from twin.models import Device

SAMPLE = Path(__file__).resolve().parents[3] / "crds" / "samples" / "ble.yaml"
THERMOMETER = model(
    "ble-thermometer-model",
    "ble",
    {"temperature": "FLOAT", "humidity": "INT", "display": "BOOLEAN"},
    read_only=("temperature", "humidity"),
)
TEMPERATURE = {
    "characteristicUUID": READINGS,
    "dataConverter": {"startIndex": 0, "endIndex": 1, "byteOrder": "little", "signed": True, "scale": 0.01},
}
HUMIDITY = {"characteristicUUID": READINGS, "dataConverter": {"startIndex": 2, "endIndex": 2}}
DISPLAY_VISITOR = {
    "characteristicUUID": DISPLAY,
    "dataWrite": {"true": [1], "false": [0]},
    "dataConverter": {"startIndex": 0, "endIndex": 0},
}


def thermometer(
    name: str,
    address: str,
    visitors: dict[str, dict[str, Any]] | None = None,
    *,
    desired: dict[str, str] | None = None,
    **config: Any,
) -> Any:
    visitors = visitors or {"temperature": TEMPERATURE, "humidity": HUMIDITY, "display": DISPLAY_VISITOR}
    protocol = {"macAddress": address, "adapter": "simulated", "timeout": 1000, **config}
    return device(name, "ble-thermometer-model", "ble", protocol, visitors, collect_ms=20, desired=desired)


def reported(stack: Stack, device_id: str, prop: str) -> str | None:
    twin = stack.twin.twins.get(device_id)
    state = twin.properties.get(prop) if twin is not None else None
    return state.actual.value if state is not None and state.actual is not None else None


def state(stack: Stack, device_id: str) -> str | None:
    twin = stack.twin.twins.get(device_id)
    return twin.state if twin is not None else None


async def test_notified_and_polled_values_arrive_and_desired_values_reach_the_peripheral(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sensor = ble_adapter.add(sample_peripheral())
    polled_humidity = {**HUMIDITY, "notify": False}
    visitors = {"temperature": TEMPERATURE, "humidity": polled_humidity, "display": DISPLAY_VISITOR}
    dev = thermometer("thermo", sensor.address, visitors, desired={"display": "false"})
    async with mapper_stack(mosquitto.address, manifests(THERMOMETER, dev), tmp_path) as stack:
        await stack.state("default/thermo", "online")
        await stack.reported("default/thermo", "temperature", "21.5")
        await stack.reported("default/thermo", "display", "false")  # the pending desired value, written
        assert sensor.writes == [Write(DISPLAY, b"\x00", True)]
        await until(lambda: reported(stack, "default/thermo", "humidity") == "45")

        reads = sensor.reads
        sensor.set(READINGS, readings(-4.75, 61))
        await stack.reported("default/thermo", "temperature", "-4.75")  # notified
        await until(lambda: reported(stack, "default/thermo", "humidity") == "61")  # polled
        assert sensor.reads > reads  # humidity is read every cycle; temperature only pushed

        async with TwinClient(mosquitto.address) as twins:
            await twins.set_desired("default/thermo", {"display": "on"})
        await stack.reported("default/thermo", "display", "true")
        assert sensor.value(DISPLAY) == b"\x01"


async def test_a_peripheral_out_of_range_goes_offline_and_comes_back_with_notifications(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sensor = ble_adapter.add(sample_peripheral())
    dev = thermometer("thermo", sensor.address)
    async with mapper_stack(mosquitto.address, manifests(THERMOMETER, dev), tmp_path) as stack:
        await stack.state("default/thermo", "online")
        await stack.reported("default/thermo", "temperature", "21.5")
        sensor.leave()
        await stack.state("default/thermo", "offline")
        sensor.set(READINGS, readings(19.0, 40))  # changed while away
        sensor.come_back()
        await stack.state("default/thermo", "online")
        await stack.reported("default/thermo", "temperature", "19")
        sensor.set(READINGS, readings(18.5, 40))
        await stack.reported("default/thermo", "temperature", "18.5")  # notifications enabled again
        assert ble_adapter.connections == 1


async def test_devices_queue_for_the_only_connection_slot_and_are_each_served_in_turn(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mappers")
    ble_adapter.capacity = 1  # the adapter refuses a second connection, as a small one does
    sensors = [ble_adapter.add(sample_peripheral(f"A4:C1:38:00:00:0{n}")) for n in (1, 2, 3)]
    polled = {"temperature": {**TEMPERATURE, "notify": False}, "humidity": {**HUMIDITY, "notify": False}}
    devices = [thermometer(f"t{n}", s.address, polled, maxConnections=1) for n, s in enumerate(sensors, 1)]
    async with mapper_stack(mosquitto.address, manifests(THERMOMETER, *devices), tmp_path) as stack:
        ids = [f"default/t{n}" for n in (1, 2, 3)]
        await until(lambda: all(reported(stack, i, "temperature") == "21.5" for i in ids))
        for round_ in (1, 2):
            for n, sensor in enumerate(sensors, 1):
                sensor.set(READINGS, readings(20 + n + round_ / 4, 50 + n))
            await until(
                lambda r=round_: all(
                    reported(stack, i, "temperature") == f"{20 + n + r / 4:g}" for n, i in enumerate(ids, 1)
                )
            )
        assert all(state(stack, i) == "online" for i in ids)
    assert ble_adapter.peak == 1
    assert "waiting for a BLE connection slot on adapter simulated (1 of 1 in use" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_device_kept_connected_for_notifications_gives_its_slot_in_turns(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    notifying, polled = (ble_adapter.add(sample_peripheral(f"A4:C1:38:00:00:0{n}")) for n in (1, 2))
    devices = [
        thermometer("notifying", notifying.address, {"temperature": TEMPERATURE}, maxConnections=1, turn=50),
        thermometer(
            "polled", polled.address, {"temperature": {**TEMPERATURE, "notify": False}}, maxConnections=1
        ),
    ]
    async with mapper_stack(mosquitto.address, manifests(THERMOMETER, *devices), tmp_path) as stack:
        for value in (30.0, 31.0, 32.0):
            notifying.set(READINGS, readings(value, 40))
            polled.set(READINGS, readings(value + 10, 40))
            await until(
                lambda v=value: (
                    reported(stack, "default/notifying", "temperature") == f"{v:g}"
                    and reported(stack, "default/polled", "temperature") == f"{v + 10:g}"
                )
            )
    assert ble_adapter.peak == 1


@pytest.mark.parametrize(
    ("fault", "visitors", "desired", "named"),
    [
        (
            "a characteristic UUID the device does not have",
            {"temperature": {"characteristicUUID": "0000beef-0000-1000-8000-00805f9b34fb"}},
            None,
            "CharacteristicNotFound: A4:C1:38:00:00:02 has no characteristic 0000beef-",
        ),
        (
            "a byte layout past the end of the data",
            {
                "temperature": {
                    "characteristicUUID": READINGS,
                    "dataConverter": {"startIndex": 4, "endIndex": 9},
                }
            },
            None,
            "LayoutMismatch: bytes 4..9 asked for, the characteristic holds 5 byte(s)",
        ),
        (
            "a desired value for a characteristic without the write property",
            {"humidity": HUMIDITY},
            {"humidity": "50"},
            "NotWritable: characteristic ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6 of A4:C1:38:00:00:02 has no",
        ),
    ],
)
async def test_a_broken_device_gets_a_named_error_while_the_other_is_served(
    fault: str,
    visitors: dict[str, dict[str, Any]],
    desired: dict[str, str] | None,
    named: str,
    ble_adapter: SimulatedAdapter,
    mosquitto: Mosquitto,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = ble_adapter.add(sample_peripheral("A4:C1:38:00:00:01"))
    ble_adapter.add(sample_peripheral("A4:C1:38:00:00:02"))
    broken_model = model("broken-model", "ble", {"temperature": "FLOAT", "humidity": "INT"})
    broken = device(
        "broken",
        "broken-model",
        "ble",
        {"macAddress": "A4:C1:38:00:00:02", "adapter": "simulated"},
        visitors,
        collect_ms=20,
        desired=desired,
    )
    defs = manifests(THERMOMETER, broken_model, thermometer("good", good.address), broken)
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await until(lambda: state(stack, "default/broken") == "unhealthy")
        assert named in caplog.text, fault
        good.set(READINGS, readings(25.5, 45))
        await until(lambda: reported(stack, "default/good", "temperature") == "25.5")
        assert state(stack, "default/good") == "online"


async def test_a_device_out_of_range_is_offline_with_a_named_error_and_holds_no_slot_meanwhile(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = ble_adapter.add(sample_peripheral("A4:C1:38:00:00:01"))
    gone = ble_adapter.add(sample_peripheral("A4:C1:38:00:00:02"))
    gone.leave()
    defs = manifests(
        THERMOMETER,
        thermometer("good", good.address, maxConnections=1, turn=50),
        thermometer("gone", gone.address, maxConnections=1, turn=50),
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await until(lambda: state(stack, "default/gone") == "offline")
        assert "PeripheralNotFound: A4:C1:38:00:00:02 is not advertising on adapter simulated" in caplog.text
        good.set(READINGS, readings(26.5, 45))
        await until(lambda: reported(stack, "default/good", "temperature") == "26.5")
        assert ble_adapter.connects == 1  # looking for the absent one took no connection (and no slot)
        gone.come_back()
        await until(lambda: state(stack, "default/gone") == "online")
        good.set(READINGS, readings(27.5, 45))
        await until(lambda: reported(stack, "default/good", "temperature") == "27.5")
    assert ble_adapter.peak == 1


async def test_the_sample_thermometer_reports_changing_values_and_takes_its_display_setting(
    ble_adapter: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    defs = load_manifests([SAMPLE])
    (sample,) = defs.devices.values()
    # The sample reports at most every 10 s; the test watches changes come in sooner.
    doc = sample.model_dump(mode="json")
    for prop in doc["spec"]["properties"]:
        prop["reportCycle"] = 0
    defs.devices[sample.id] = Device.model_validate(doc)
    sim = asyncio.create_task(serve_sample(drift=0.02), name="sample BLE thermometer")
    try:
        async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
            await stack.state("default/ble-thermometer", "online")
            await until(lambda: reported(stack, "default/ble-thermometer", "display") == "true")
            first = reported(stack, "default/ble-thermometer", "temperature")
            assert first is not None
            await until(
                lambda: reported(stack, "default/ble-thermometer", "temperature") not in (None, first)
            )
            assert 20.0 <= float(reported(stack, "default/ble-thermometer", "temperature") or 0) <= 23.0
            sensor = ble_adapter.find("A4:C1:38:00:00:01")
            assert isinstance(sensor, SimulatedPeripheral)
            assert sensor.value(DISPLAY) == b"\x01"
    finally:
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim
    assert ble_adapter.find("A4:C1:38:00:00:01") is None
