"""``edgetwin discover modbus://…``: the slave ids that answer, found on pymodbus simulators."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from mappers.discovery import Discovered, DiscoverOptions
from mappers.modbus.decoding import RegisterKind
from mappers.modbus.discovery import InvalidTarget, discover
from mappers.modbus.simulator import Slave
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.modbus import SerialLine, rtu_modbus, tcp_modbus
from tests.fixtures.processes import run_cli
from tests.fixtures.tools import free_port
from tests.mappers.harness import mapper_stack
from twin.client import TwinClient
from twin.errors import DeviceUnreachable
from twin.manifests import load_manifests

H, IR, CO = RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL


def options(ids: range | tuple[int, ...], **kw: Any) -> DiscoverOptions:
    return DiscoverOptions(slave_ids=tuple(ids), **kw)


def loads_back(found: Discovered, tmp_path: Path) -> Any:
    path = tmp_path / "discovered.yaml"
    path.write_text(found.to_yaml())
    return load_manifests([path])


async def test_two_slaves_behind_a_tcp_gateway_are_found_and_served_as_discovered(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with tcp_modbus(Slave(1), Slave(5), absent="gateway") as plc:
        await plc.sim.set(H, 0, [215], slave=1)
        await plc.sim.set(CO, 0, [1], slave=5)
        lines: list[str] = []
        found = await discover(f"modbus://127.0.0.1:{plc.port}", options(range(1, 11)), lines.append)
        assert [d.spec.protocol.configData["slaveID"] for d in found.devices] == [1, 5]
        assert any(line.startswith("slave 1: answered (holding-0 = 215") for line in lines)
        assert lines[-1] == f"2 slave(s) answered on 127.0.0.1:{plc.port}: 1, 5"

        manifests = loads_back(found, tmp_path)
        first = manifests.devices[f"default/modbus-127-0-0-1-{plc.port}-slave-1"]
        assert first.spec.protocol.configData == {
            "communicateMode": "TCP",
            "ip": "127.0.0.1",
            "port": plc.port,
            "slaveID": 1,
        }
        assert [p.name for p in first.spec.properties] == [
            "holding-0",
            "input-0",
            "coil-0",
            "discrete-input-0",
        ]
        text = found.to_yaml()
        assert text.startswith(f"# Modbus slaves on 127.0.0.1:{plc.port} found by `edgetwin discover`: 1, 5.")
        assert "# Modbus cannot list registers" in text

        # The YAML as it is: the Modbus mapper serves it and the twin gets the values.
        stack_dir = tmp_path / "twin"
        async with (
            mapper_stack(mosquitto.address, manifests, stack_dir, protocols=["modbus"]),
            TwinClient(mosquitto.address) as twins,
        ):
            prefix = f"modbus-127-0-0-1-{plc.port}"
            assert await reported(twins, f"{prefix}-slave-1", "holding-0") == "215"
            assert await reported(twins, f"{prefix}-slave-5", "coil-0") == "true"


async def reported(twins: TwinClient, device: str, prop: str) -> str:
    """The property's reported value, once the twin has one."""
    async with asyncio.timeout(10), twins.subscription(device, ("document",)) as documents:
        while (value := (await twins.get(device))[prop].reported) is None:
            await documents.get()
    return value


async def test_slaves_on_an_rs485_line_and_silent_ids_are_absent(
    serial_line: SerialLine, tmp_path: Path
) -> None:
    async with rtu_modbus(serial_line, Slave(1), Slave(2), absent="silent") as line:
        await line.sim.set(IR, 0, [42], slave=2)
        found = await discover(serial_line.client, options(range(1, 5), baud_rate=115200), lambda _: None)
    assert [d.spec.protocol.configData["slaveID"] for d in found.devices] == [1, 2]
    device = found.devices[1]
    assert device.metadata.name == f"modbus-{Path(serial_line.client).name}-slave-2"
    assert device.spec.protocol.configData == {
        "communicateMode": "RTU",
        "serialPort": serial_line.client,
        "baudRate": 115200,
        "dataBits": 8,
        "parity": "none",
        "stopBits": 1,
        "slaveID": 2,
    }
    assert "placeholder: InputRegister 0 read 42" in found.models[1].spec.properties[1].description
    assert len(loads_back(found, tmp_path).devices) == 2


async def test_a_slave_that_answers_with_an_exception_is_there(tmp_path: Path) -> None:
    async with tcp_modbus(Slave(3, holes=frozenset({0})), absent="gateway") as plc:
        lines: list[str] = []
        found = await discover(
            f"modbus://127.0.0.1:{plc.port}", options((2, 3), name="Boiler #1"), lines.append
        )
    (device,) = found.devices
    assert device.metadata.name == "boiler-1"
    assert found.models[0].metadata.name == "boiler-1-model"
    assert [p.name for p in device.spec.properties] == ["input-0", "coil-0", "discrete-input-0"]
    assert any("holding-0: exception 2 (illegal data address)" in line for line in lines)
    loads_back(found, tmp_path)


async def test_a_scan_that_runs_out_of_time_says_which_ids_were_not_tried(serial_line: SerialLine) -> None:
    async with rtu_modbus(serial_line, Slave(1), absent="silent"):
        found = await discover(
            serial_line.client, options((1, *range(3, 30)), baud_rate=115200, timeout=0.6), lambda _: None
        )
        assert [d.spec.protocol.configData["slaveID"] for d in found.devices] == [1]
        (note,) = (n for n in found.notes if n.startswith("The scan stopped after 0.6 s"))
        assert "-29 were not tried (--timeout 7 tries them all, or narrow --slave-ids)" in note

        with pytest.raises(
            DeviceUnreachable, match=r"no Modbus slave answered on .* \(tried ids 3-\d+; ids \d+-29"
        ):
            await discover(
                serial_line.client, options(range(3, 30), baud_rate=115200, timeout=0.3), lambda _: None
            )


async def test_a_device_that_answers_every_id_is_pointed_out() -> None:
    async with tcp_modbus(Slave(1)) as plc:  # pymodbus's own simulator answers any id (exception 4)
        found = await discover(f"modbus://127.0.0.1:{plc.port}", options(range(1, 17)), lambda _: None)
    assert len(found.devices) == 16
    assert any(n.startswith("Every slave id answered: this is probably one device") for n in found.notes)


async def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(DeviceUnreachable, match="cannot connect"):
        await discover(f"modbus://127.0.0.1:{free_port()}", options(range(1, 3)), lambda _: None)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("modbus://127.0.0.1:x", "the port must be a number"),
        ("modbus://127.0.0.1:502/7", "use modbus://HOST:PORT"),
        ("mqtt://127.0.0.1:502", "use modbus://HOST:PORT"),
        ("modbus://:502", "use modbus://HOST:PORT"),
    ],
)
async def test_a_target_that_is_not_modbus_is_refused(target: str, message: str) -> None:
    with pytest.raises(InvalidTarget, match=message):
        await discover(target, options(range(1, 3)), lambda _: None)


async def test_the_command_prints_yaml_and_shows_progress(tmp_path: Path) -> None:
    async with tcp_modbus(Slave(1), Slave(2), absent="gateway") as plc:
        url = f"modbus://127.0.0.1:{plc.port}"
        result = await asyncio.to_thread(run_cli, "discover", url, "--slave-ids", "1-4", "--node", "gw-7")
        bad = await asyncio.to_thread(run_cli, "discover", "/dev/ttyUSB0", "--baud", "0")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert [d["kind"] for d in docs] == ["DeviceModel", "DeviceModel", "Device", "Device"]
    assert {d["spec"]["nodeName"] for d in docs if d["kind"] == "Device"} == {"gw-7"}
    assert f"asking 4 slave id(s) on 127.0.0.1:{plc.port}" in result.stderr
    assert "slave 2: answered" in result.stderr
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("edgetwin discover: error: '/dev/ttyUSB0': baudRate")
