"""OPC UA devices end to end: asyncua server <-> mapper runner <-> twin, over real sockets and a broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asyncua import ua

from mappers.opcua.simulator import OpcuaSimulator
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.tools import free_port
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import mapper_stack, until
from tests.mappers.opcua.helpers import edgetwin, holds

pytestmark = pytest.mark.asyncio(loop_scope="module")

BOILER = model(
    "opcua-boiler-model",
    "opcua",
    {"temperature": "DOUBLE", "valve": "BOOLEAN", "limit": "FLOAT"},
    read_only=("temperature",),
)
VISITORS: dict[str, dict[str, Any]] = {
    "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
    "valve": {"nodeID": "ns=2;s=Boiler.Valve"},
    "limit": {"browsePath": "/0:Objects/2:Boiler/2:PressureLimit"},
}


def boiler(
    name: str, config: dict[str, Any], visitors: dict[str, dict[str, Any]] = VISITORS, **kw: Any
) -> Any:
    return device(name, "opcua-boiler-model", "opcua", config, visitors, **kw)


async def test_polled_device_reports_takes_desired_values_and_survives_a_server_restart(
    opcua_sim: OpcuaSimulator, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await opcua_sim.set("Temperature", 21.5)
    await opcua_sim.set("PressureLimit", 2.5)
    defs = manifests(BOILER, boiler("boiler", {"url": opcua_sim.url, "timeout": 1000}, collect_ms=30))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await stack.state("default/boiler", "online")
        await holds(stack, "default/boiler", "temperature", "21.5")
        await holds(stack, "default/boiler", "limit", "2.5")

        await edgetwin("twin", "set", "boiler", "limit", "3.25", "--broker", mosquitto.address.url)
        await holds(stack, "default/boiler", "limit", "3.25")
        assert await opcua_sim.get("PressureLimit") == 3.25  # a Float on the server, as its DataType says

        await opcua_sim.stop()
        try:
            await stack.state("default/boiler", "offline")
        finally:
            await opcua_sim.start()
        await stack.state("default/boiler", "online")
        await opcua_sim.set("Temperature", 30.25)
        await holds(stack, "default/boiler", "temperature", "30.25")


async def test_subscribed_device_gets_changes_pushed_without_polling_and_after_a_restart(
    opcua_sim: OpcuaSimulator, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    await opcua_sim.set("Temperature", 40.0)
    config = {"url": opcua_sim.url, "mode": "subscribe", "publishingInterval": 20}
    # A 10 ms collectCycle: polled, the server would count dozens of reads per second.
    defs = manifests(BOILER, boiler("sub-boiler", config, collect_ms=10))
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await holds(stack, "default/sub-boiler", "temperature", "40")
        reads = opcua_sim.reads["Temperature"]
        for value in ("40.5", "41", "41.5"):
            await opcua_sim.set("Temperature", float(value))
            await holds(stack, "default/sub-boiler", "temperature", value)
        assert opcua_sim.reads["Temperature"] == reads

        await opcua_sim.stop()
        try:
            await stack.state("default/sub-boiler", "offline")
        finally:
            await opcua_sim.start()
        await stack.state("default/sub-boiler", "online")
        reads = opcua_sim.reads["Temperature"]  # one read at reconnect
        await opcua_sim.set("Temperature", 42.0)
        await holds(stack, "default/sub-boiler", "temperature", "42")  # the subscription is back
        assert opcua_sim.reads["Temperature"] == reads


async def test_a_write_the_server_refuses_marks_the_device_unhealthy_and_it_keeps_reporting(
    opcua_sim: OpcuaSimulator, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await opcua_sim.add_variable(
        "Mislabelled", 1.5, ua.VariantType.Double, writable=True, data_type=ua.VariantType.Float
    )
    writable = model(
        "opcua-writable-model", "opcua", {"temperature": "DOUBLE", "mislabelled": "FLOAT", "ro": "DOUBLE"}
    )
    visitors = {
        "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
        "mislabelled": {"nodeID": "ns=2;s=Boiler.Mislabelled"},
        "ro": {"nodeID": "ns=2;s=Boiler.Temperature"},  # ReadWrite in the model, read-only on the server
    }
    dev = device("picky", "opcua-writable-model", "opcua", {"url": opcua_sim.url}, visitors, collect_ms=30)
    async with mapper_stack(mosquitto.address, manifests(writable, dev), tmp_path) as stack:
        await stack.state("default/picky", "online")
        url = mosquitto.address.url
        await edgetwin("twin", "set", "picky", "mislabelled", "2.5", "--broker", url)
        await stack.state("default/picky", "unhealthy")
        await until(lambda: "BadTypeMismatch" in caplog.text)
        await edgetwin("twin", "set", "picky", "ro", "80", "--broker", url)
        await until(lambda: "BadUserAccessDenied" in caplog.text)
        await opcua_sim.set("Temperature", 55.5)
        await holds(stack, "default/picky", "temperature", "55.5")  # the session goes on
        assert stack.runner.workers["default/picky"].state == "unhealthy"
    assert await opcua_sim.get("Mislabelled") == 1.5


async def test_broken_devices_are_named_and_the_others_are_served(
    opcua_sim: OpcuaSimulator, mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await opcua_sim.set("Temperature", 60.0)
    dead = f"opc.tcp://127.0.0.1:{free_port()}/nobody/"
    ghost = {**VISITORS, "temperature": {"nodeID": "ns=2;s=Boiler.NoSuchSensor"}}
    defs = manifests(
        BOILER,
        boiler("good", {"url": opcua_sim.url}, collect_ms=30),
        boiler("unreachable", {"url": dead, "timeout": 300}, collect_ms=30),
        boiler("wrong-node", {"url": opcua_sim.url}, ghost, collect_ms=30),
        boiler(
            "no-cert",
            {
                "url": opcua_sim.url,
                "securityPolicy": "Basic256Sha256",
                "certificateFile": str(tmp_path / "missing.pem"),
                "privateKeyFile": str(tmp_path / "missing-key.pem"),
            },
        ),
    )
    async with mapper_stack(mosquitto.address, defs, tmp_path) as stack:
        await holds(stack, "default/good", "temperature", "60")
        twins = stack.twin.twins
        await until(lambda: twins["default/unreachable"].state == "offline")
        await until(lambda: twins["default/wrong-node"].state == "unhealthy")
        await until(lambda: twins["default/no-cert"].state == "unhealthy")
        await holds(stack, "default/wrong-node", "valve", "false")  # its other properties report
        await opcua_sim.set("Temperature", 61.0)
        await holds(stack, "default/good", "temperature", "61")
    text = caplog.text
    assert (
        f"default/unreachable: offline: DeviceUnreachable: cannot connect to {dead}: connection refused"
        in text
    )
    assert "default/wrong-node: reading temperature failed: DeviceRefused: ns=2;s=Boiler.NoSuchSensor" in text
    assert "BadNodeIdUnknown" in text
    assert "default/no-cert: unhealthy: CredentialsUnreadable: certificateFile" in text
    assert "missing.pem: cannot read it: No such file or directory" in text
