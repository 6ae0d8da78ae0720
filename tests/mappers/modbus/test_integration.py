"""Modbus devices end to end: simulator <-> mapper runner <-> twin, over real sockets and ptys."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from mappers.modbus.decoding import RegisterKind
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.modbus import RtuModbus, TcpModbus
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import mapper_stack

H, CO = RegisterKind.HOLDING, RegisterKind.COIL
EDGETWIN = Path(sys.executable).parent / "edgetwin"

THERMOSTAT = model(
    "modbus-thermostat-model",
    "modbus",
    {"temperature": "FLOAT", "setpoint": "FLOAT", "power": "BOOLEAN", "limited": "INT"},
    read_only=("temperature",),
)
VISITORS: dict[str, dict[str, Any]] = {
    "temperature": {"register": "HoldingRegister", "offset": 0, "limit": 1, "scale": 0.1},
    "setpoint": {"register": "HoldingRegister", "offset": 1, "limit": 1, "scale": 0.1},
    "power": {"register": "CoilRegister", "offset": 0, "limit": 1},
    "limited": {"register": "HoldingRegister", "offset": 50, "limit": 1},
}


def thermostat(name: str, config: dict[str, Any], visitors: dict[str, dict[str, Any]] = VISITORS) -> Any:
    return device(name, "modbus-thermostat-model", "modbus", config, visitors, collect_ms=30)


async def edgetwin(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(EDGETWIN), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"edgetwin {' '.join(args)} did not finish: {out.decode()}") from None
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_tcp_device_values_desired_values_and_outages(
    modbus_tcp: TcpModbus, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sim = modbus_tcp.sim
    await sim.set(H, 0, [215])
    defs = manifests(THERMOSTAT, thermostat("plc", modbus_tcp.config(timeout=300)))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/plc", "online")
        await stack.reported("default/plc", "temperature", "21.5")

        await sim.set(H, 0, [0xFFF6])  # -1.0 degrees
        await stack.reported("default/plc", "temperature", "-1")

        await edgetwin("twin", "set", "plc", "setpoint", "23.5", "--broker", mosquitto.address.url)
        await stack.reported("default/plc", "setpoint", "23.5")
        assert await sim.get(H, 1) == [235]

        await sim.stop()
        await stack.state("default/plc", "offline")
        await sim.start()
        await sim.set(H, 0, [200])
        await stack.state("default/plc", "online")
        await stack.reported("default/plc", "temperature", "20")


async def test_value_the_plc_refuses_makes_the_device_unhealthy_not_the_mapper(
    modbus_tcp: TcpModbus, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    defs = manifests(THERMOSTAT, thermostat("plc", modbus_tcp.config()))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/plc", "online")
        await edgetwin("twin", "set", "plc", "limited", "5000", "--broker", mosquitto.address.url)
        await stack.state("default/plc", "unhealthy")
        assert "illegal data value" in caplog.text
        await edgetwin("twin", "set", "plc", "limited", "500", "--broker", mosquitto.address.url)
        await stack.state("default/plc", "online")
        await stack.reported("default/plc", "limited", "500")
    assert await modbus_tcp.sim.get(H, 50) == [500]


async def test_two_slaves_on_one_rtu_line_both_work(
    modbus_rtu: RtuModbus, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    sim = modbus_rtu.sim
    await sim.set(H, 0, [215], slave=1)
    await sim.set(H, 0, [180], slave=2)
    defs = manifests(
        THERMOSTAT,
        thermostat("left", modbus_rtu.config(slave=1)),
        thermostat("right", modbus_rtu.config(slave=2)),
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.reported("default/left", "temperature", "21.5")
        await stack.reported("default/right", "temperature", "18")
        assert list(stack.runner.buses._buses) == [f"modbus:serial:{modbus_rtu.line.client}"]
        await edgetwin("twin", "set", "right", "power", "true", "--broker", mosquitto.address.url)
        await stack.reported("default/right", "power", "true")
    assert await sim.get(CO, 0, slave=2) == [1]
    assert await sim.get(CO, 0, slave=1) == [0]
