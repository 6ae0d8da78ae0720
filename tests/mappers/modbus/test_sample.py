"""The Modbus TCP sample of crds/samples against the sample simulator: what ``make run`` shows."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mappers.modbus.simulator import serve_sample
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.tools import free_port
from tests.mappers.harness import mapper_stack, until
from twin.manifests import load_manifests
from twin.models import Device

SAMPLE = Path(__file__).resolve().parents[3] / "crds" / "samples" / "modbus-tcp.yaml"


async def test_sample_thermostat_comes_online_with_its_values_and_desired_state(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    defs = load_manifests([SAMPLE])
    (device,) = defs.devices.values()
    # The sample says port 5020; the test's simulator listens on a free port.
    doc = device.model_dump(mode="json")
    doc["spec"]["protocol"]["configData"]["port"] = port
    defs.devices[device.id] = Device.model_validate(doc)
    sim_task = asyncio.create_task(serve_sample("127.0.0.1", port, drift=0), name="sample simulator")
    try:
        async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
            await stack.state("default/modbus-thermostat", "online")
            await stack.reported("default/modbus-thermostat", "temperature", "21.5")
            await stack.reported("default/modbus-thermostat", "setpoint", "21")
            twin = stack.twin.twins["default/modbus-thermostat"]
            await until(lambda: twin.state == "online")
    finally:
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
