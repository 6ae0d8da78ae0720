"""The OPC UA sample of crds/samples against the sample simulator: what ``edgetwin up`` shows."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mappers.opcua.simulator import SAMPLE_PATH, serve_sample
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.tools import free_port
from tests.mappers.harness import mapper_stack, until
from tests.mappers.opcua.helpers import holds
from twin.manifests import load_manifests
from twin.models import Device

SAMPLE = Path(__file__).resolve().parents[3] / "crds" / "samples" / "opcua.yaml"


async def test_sample_boiler_comes_online_with_its_values_and_desired_state(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    defs = load_manifests([SAMPLE])
    (device,) = defs.devices.values()
    doc = device.model_dump(mode="json")
    # The sample says port 4840; the test's simulator listens on a free port.
    assert doc["spec"]["protocol"]["configData"]["url"] == f"opc.tcp://127.0.0.1:4840{SAMPLE_PATH}"
    doc["spec"]["protocol"]["configData"]["url"] = f"opc.tcp://127.0.0.1:{port}{SAMPLE_PATH}"
    defs.devices[device.id] = Device.model_validate(doc)
    sim_task = asyncio.create_task(serve_sample("127.0.0.1", port, drift=0), name="sample simulator")
    try:
        async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
            await stack.state("default/opcua-boiler", "online")
            await holds(stack, "default/opcua-boiler", "temperature", "21.5")
            await holds(stack, "default/opcua-boiler", "valve", "false")
            await holds(stack, "default/opcua-boiler", "pressure-limit", "2.5")
            twin = stack.twin.twins["default/opcua-boiler"]
            await until(lambda: twin.state == "online")
    finally:
        sim_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sim_task
