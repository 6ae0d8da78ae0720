"""``edgetwin discover ble`` against the simulated adapter: the scan, and YAML the twin serves as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetwin.cli import main
from mappers.ble.config import ADAPTER_ENV
from mappers.ble.discovery import discover
from mappers.ble.errors import PeripheralNotFound
from mappers.ble.sample import READINGS, SAMPLE_ADDRESS, SAMPLE_NAME, readings, sample_peripheral
from mappers.ble.simulator import (
    SimulatedAdapter,
    SimulatedCharacteristic,
    SimulatedPeripheral,
    SimulatedService,
)
from mappers.discovery import DiscoverOptions
from tests.fixtures.brokers import Mosquitto
from tests.mappers.harness import mapper_stack, until
from twin.manifests import load_manifests
from twin.models import PropertyType


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch, ble_adapter: SimulatedAdapter) -> SimulatedAdapter:
    """Discovery on the simulated adapter, chosen the way a user chooses it for a whole process."""
    monkeypatch.setenv(ADAPTER_ENV, "simulated")
    return ble_adapter


async def test_a_scan_lists_the_peripherals_in_range_as_they_appear(simulated: SimulatedAdapter) -> None:
    simulated.add(sample_peripheral())
    simulated.add(SimulatedPeripheral("11:22:33:44:55:66", "kettle", rssi=-80))
    simulated.add(SimulatedPeripheral("11:22:33:44:55:77", "far away")).leave()
    lines: list[str] = []
    found = await discover("ble", DiscoverOptions(timeout=0.05), lines.append)
    assert lines[0] == "scanning for BLE devices on adapter simulated for 0.05s..."
    assert sorted(lines[1:]) == [
        "found 11:22:33:44:55:66 kettle (-80 dBm)",
        f"found {SAMPLE_ADDRESS} {SAMPLE_NAME} (-60 dBm)",
    ]
    assert found.models == () and found.devices == ()
    text = found.to_yaml()
    assert "# BLE devices advertising on adapter simulated within 0.05s: 2" in text
    assert text.index(SAMPLE_ADDRESS) < text.index("11:22:33:44:55:66")  # strongest signal first
    assert "edgetwin discover ble --address ADDRESS" in text
    assert all(line.startswith("#") for line in text.splitlines())


async def test_a_scan_of_an_empty_simulated_adapter_says_where_its_peripherals_live(
    simulated: SimulatedAdapter,
) -> None:
    found = await discover("ble", DiscoverOptions(timeout=0.01), lambda _: None)
    assert "The simulated adapter has no peripherals in this process" in found.to_yaml()


async def test_a_described_device_is_yaml_the_twin_serves_unchanged(
    simulated: SimulatedAdapter, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sensor = simulated.add(sample_peripheral())
    sensor.services.append(
        SimulatedService("fff0", [SimulatedCharacteristic("fff9", ("write-without-response",))])
    )
    lines: list[str] = []
    found = await discover("ble", DiscoverOptions(address=SAMPLE_ADDRESS, name="thermo"), lines.append)
    assert any("ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6 characteristic: read, notify" in line for line in lines)
    path = tmp_path / "thermo.yaml"
    path.write_text(found.to_yaml())
    defs = load_manifests([path])
    (model,) = defs.models.values()
    (dev,) = defs.devices.values()
    assert dev.id == "default/thermo" and dev.model_key == model.key
    assert dev.spec.protocol.configData == {"macAddress": SAMPLE_ADDRESS, "adapter": "simulated"}
    types = {p.name: (p.type, p.accessMode.value) for p in model.spec.properties}
    assert types == {
        "char-ebe0ccc1": (PropertyType.BYTES, "ReadOnly"),
        "char-ebe0ccd8": (PropertyType.BYTES, "ReadWrite"),
        "battery-level": (PropertyType.INT, "ReadOnly"),
    }
    assert "write-only characteristic 0000fff9-0000-1000-8000-00805f9b34fb" in path.read_text()
    battery = next(p for p in model.spec.properties if p.name == "battery-level")
    assert (
        battery.description == "Battery Level 00002a19-0000-1000-8000-00805f9b34fb (read); read 1 byte(s): 5c"
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path / "twin") as stack:
        await stack.state("default/thermo", "online")
        twin = stack.twin.twins["default/thermo"]

        def actual(name: str) -> str | None:
            prop = twin.properties.get(name)
            return prop.actual.value if prop is not None and prop.actual is not None else None

        await until(lambda: actual("battery-level") == "92" and actual("char-ebe0ccd8") == "01")
        assert actual("char-ebe0ccc1") == readings(21.5, 45).hex()
        sensor.set(READINGS, readings(22.0, 45))
        await until(lambda: actual("char-ebe0ccc1") == readings(22.0, 45).hex())  # notified


async def test_a_device_can_be_described_by_its_advertised_name(simulated: SimulatedAdapter) -> None:
    simulated.add(sample_peripheral())
    found = await discover("ble", DiscoverOptions(address=SAMPLE_NAME), lambda _: None)
    (dev,) = found.devices
    assert dev.metadata.name == "et-thermo-01"
    assert dev.spec.protocol.configData["macAddress"] == SAMPLE_ADDRESS


async def test_an_address_nobody_advertises_is_a_named_error(simulated: SimulatedAdapter) -> None:
    with pytest.raises(PeripheralNotFound, match=r"did not advertise within 0\.05s on adapter simulated"):
        await discover("ble", DiscoverOptions(address=SAMPLE_ADDRESS, timeout=0.05), lambda _: None)


def test_the_command_writes_the_yaml_and_shows_progress(
    simulated: SimulatedAdapter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    simulated.add(sample_peripheral())
    out = tmp_path / "found.yaml"
    assert main(["discover", "ble", "--address", SAMPLE_ADDRESS, "--timeout", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"connecting to {SAMPLE_ADDRESS}" in err
    assert "wrote 1 DeviceModel(s) and 1 Device(s)" in err
    assert len(load_manifests([out]).devices) == 1


def test_the_command_fails_with_one_line_when_the_device_is_not_there(
    simulated: SimulatedAdapter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["discover", "ble", "--address", SAMPLE_ADDRESS, "--timeout", "0.05"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"edgetwin discover: error: {SAMPLE_ADDRESS} did not advertise")
