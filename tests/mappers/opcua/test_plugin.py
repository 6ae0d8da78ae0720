"""The OPC UA plugin against a real asyncua server: reads, writes, refusals, subscriptions, outages.

These call the plugin as the runner does (``read_many``, ``write``, ``watch``); the twin-side view
of the same behaviour is in ``test_integration``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asyncua import ua

from mappers.bus import Buses
from mappers.opcua.plugin import OpcuaMapper
from mappers.opcua.simulator import OpcuaSimulator
from mappers.plugin import ReadResult
from tests.fixtures.tools import free_port
from tests.mappers.builders import device, mapped, model
from twin.errors import DeviceRefused, DeviceUnreachable, InvalidManifest, OutOfRange

pytestmark = pytest.mark.asyncio(loop_scope="module")

VT = ua.VariantType

TYPES = {
    "temperature": "DOUBLE",
    "pressure": "FLOAT",
    "valve": "BOOLEAN",
    "limit": "FLOAT",
    "starts": "INT",
    "model": "STRING",
    "by-path": "DOUBLE",
}
VISITORS: dict[str, dict[str, Any]] = {
    "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
    "pressure": {"nodeID": "ns=2;s=Boiler.Pressure"},
    "valve": {"nodeID": "ns=2;s=Boiler.Valve"},
    "limit": {"nodeID": "ns=2;s=Boiler.PressureLimit"},
    "starts": {"nodeID": "ns=2;s=Boiler.BurnerStarts"},
    "model": {"nodeID": "ns=2;s=Boiler.Model"},
    "by-path": {"browsePath": "0:Objects/2:Boiler/2:Temperature"},
}


def boiler(
    sim: OpcuaSimulator,
    types: dict[str, str] = TYPES,
    visitors: dict[str, dict[str, Any]] = VISITORS,
    **config: Any,
) -> OpcuaMapper:
    mod = model("boiler-model", "opcua", types)
    dev = device("boiler", "boiler-model", "opcua", {"url": sim.url, **config}, visitors, collect_ms=20)
    return OpcuaMapper(mapped(dev, mod, OpcuaMapper), Buses())


async def read_all(mapper: OpcuaMapper) -> dict[str, ReadResult]:
    return await mapper.read_many(list(mapper.device.properties))


async def test_reads_give_each_property_its_device_model_type(opcua_sim: OpcuaSimulator) -> None:
    await opcua_sim.set("Temperature", 21.5)
    await opcua_sim.set("Pressure", 1.3)  # a Float node: reported as 1.3, not 1.2999999523162842
    await opcua_sim.set("Valve", True)
    await opcua_sim.set("BurnerStarts", 4)
    async with boiler(opcua_sim) as mapper:
        values = await read_all(mapper)
    assert values["temperature"] == 21.5
    assert values["by-path"] == 21.5
    assert values["pressure"] == 1.3
    assert values["valve"] is True
    assert values["starts"] == 4
    assert values["model"] == "EB-200"


async def test_a_wrong_node_fails_its_property_alone_with_the_node_and_status_named(
    opcua_sim: OpcuaSimulator,
) -> None:
    types = {"temperature": "DOUBLE", "ghost": "INT", "typo": "INT", "lost": "INT"}
    visitors = {
        "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
        "ghost": {"nodeID": "ns=2;s=Boiler.NoSuchThing"},
        "typo": {"nodeID": "ns=2;x=7"},
        "lost": {"browsePath": "/0:Objects/2:Boiler/2:Nowhere"},
    }
    async with boiler(opcua_sim, types, visitors) as mapper:
        values = await read_all(mapper)
        with pytest.raises(DeviceRefused, match="BadNodeIdUnknown"):
            await mapper.write(mapper.device.properties[1], 5)
    assert values["temperature"] == await opcua_sim.get("Temperature")
    assert isinstance(values["ghost"], DeviceRefused)
    assert "ns=2;s=Boiler.NoSuchThing: BadNodeIdUnknown" in str(values["ghost"])
    assert isinstance(values["typo"], InvalidManifest)
    assert "'ns=2;x=7' is not an OPC UA node id" in str(values["typo"])
    assert isinstance(values["lost"], DeviceRefused)
    assert "BadNoMatch" in str(values["lost"])


async def test_a_desired_value_is_written_as_the_nodes_own_type(opcua_sim: OpcuaSimulator) -> None:
    await opcua_sim.add_variable("Setpoint16", 20, VT.Int16, writable=True)
    types = {"limit": "FLOAT", "setpoint": "INT", "valve": "BOOLEAN", "limit-text": "STRING"}
    visitors = {
        "limit": {"nodeID": "ns=2;s=Boiler.PressureLimit"},
        "setpoint": {"nodeID": "ns=2;s=Boiler.Setpoint16"},
        "valve": {"nodeID": "ns=2;s=Boiler.Valve"},
        "limit-text": {"nodeID": "ns=2;s=Boiler.PressureLimit"},
    }
    async with boiler(opcua_sim, types, visitors) as mapper:
        limit, setpoint, valve, limit_text = mapper.device.properties
        await mapper.write(limit, 3.25)  # a Python float: sent as the node's Float, not a Double
        assert await opcua_sim.get("PressureLimit") == 3.25
        await mapper.write(setpoint, -300)
        assert await opcua_sim.get("Setpoint16") == -300
        await mapper.write(valve, True)
        assert await opcua_sim.get("Valve") is True
        await mapper.write(limit_text, "2.75")  # a STRING property on a Float node
        assert await mapper.read(limit) == 2.75
        with pytest.raises(OutOfRange, match="outside the Int16 range"):
            await mapper.write(setpoint, 40000)
    assert await opcua_sim.get("Setpoint16") == -300


async def test_writes_the_server_refuses_are_named_and_the_session_goes_on(opcua_sim: OpcuaSimulator) -> None:
    await opcua_sim.add_variable("Liar", 1.5, VT.Double, writable=True, data_type=VT.Float)
    types = {"temperature": "DOUBLE", "liar": "FLOAT"}
    visitors = {
        "temperature": {"nodeID": "ns=2;s=Boiler.Temperature"},
        "liar": {"nodeID": "ns=2;s=Boiler.Liar"},
    }
    async with boiler(opcua_sim, types, visitors) as mapper:
        temperature, liar = mapper.device.properties
        with pytest.raises(DeviceRefused, match=r"refused 80: BadUserAccessDenied"):
            await mapper.write(temperature, 80.0)  # read-only on the server
        with pytest.raises(DeviceRefused, match=r"refused 2.5: BadTypeMismatch"):
            await mapper.write(liar, 2.5)  # its DataType says Float, its value is a Double
        assert await mapper.read(temperature) == await opcua_sim.get("Temperature")


async def collect(gen: AsyncIterator[tuple[str, ReadResult]], into: asyncio.Queue[tuple[str, Any]]) -> None:
    async for item in gen:
        into.put_nowait(item)


async def next_value(queue: asyncio.Queue[tuple[str, Any]], name: str, value: Any) -> None:
    async with asyncio.timeout(10):
        while (await queue.get()) != (name, value):
            pass


async def test_subscribed_properties_arrive_as_the_server_changes_them(opcua_sim: OpcuaSimulator) -> None:
    await opcua_sim.set("Temperature", 20.0)
    async with boiler(opcua_sim, mode="subscribe") as mapper:
        props = [p for p in mapper.device.properties if mapper.pushes(p)]
        assert len(props) == len(TYPES)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        task = asyncio.create_task(collect(mapper.watch(props), queue))
        try:
            await next_value(queue, "temperature", 20.0)  # the initial value
            reads = opcua_sim.reads["Temperature"]
            for value in (20.5, 21.0, 21.5):
                await opcua_sim.set("Temperature", value)
                await next_value(queue, "temperature", value)
                await next_value(queue, "by-path", value)
            assert opcua_sim.reads["Temperature"] == reads  # pushed, never read
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_mode_per_property_overrides_the_devices(opcua_sim: OpcuaSimulator) -> None:
    visitors = {**VISITORS, "valve": {"nodeID": "ns=2;s=Boiler.Valve", "mode": "subscribe"}}
    async with boiler(opcua_sim, TYPES, visitors) as mapper:
        assert [p.name for p in mapper.device.properties if mapper.pushes(p)] == ["valve"]


async def test_a_stopped_server_ends_watch_even_when_nothing_is_subscribed(opcua_sim: OpcuaSimulator) -> None:
    for mode in ("poll", "subscribe"):
        async with boiler(opcua_sim, mode=mode) as mapper:
            props = [p for p in mapper.device.properties if mapper.pushes(p)]
            queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
            task = asyncio.create_task(collect(mapper.watch(props), queue))
            await asyncio.sleep(0)
            await opcua_sim.stop()
            try:
                async with asyncio.timeout(10):
                    with pytest.raises(DeviceUnreachable):
                        await task
                with pytest.raises(DeviceUnreachable):
                    await read_all(mapper)
            finally:
                await opcua_sim.start()


async def test_an_unreachable_endpoint_is_device_unreachable(opcua_sim: OpcuaSimulator) -> None:
    mod = model("boiler-model", "opcua", {"temperature": "DOUBLE"})
    url = f"opc.tcp://127.0.0.1:{free_port()}/nobody/"
    dev = device(
        "b", "boiler-model", "opcua", {"url": url, "timeout": 500}, {"temperature": VISITORS["temperature"]}
    )
    mapper = OpcuaMapper(mapped(dev, mod, OpcuaMapper), Buses())
    with pytest.raises(DeviceUnreachable, match=f"cannot connect to {url}: connection refused"):
        async with mapper:
            pass
