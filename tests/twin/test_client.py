"""``TwinClient``, the asyncio API for apps, against a real twin service on both brokers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from edgemqtt.client import BrokerAddress
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.twin import start_twin
from tests.mappers.builders import device, model
from twin.client import TwinClient
from twin.errors import RequestRefused, UnknownDevice
from twin.manifests import Manifests
from twin.service import TwinService


async def test_get_set_report_and_watch(twin_service: TwinService, broker: BrokerAddress) -> None:
    async with TwinClient(broker) as client, client.subscription("thermostat") as events:
        state = await client.get("thermostat")
        assert state["target"].desired == "20"
        assert state["target"].type == "int"
        changed = await client.set_desired("default/thermostat", {"target": "25"})
        assert changed["target"].desired == "25"
        document = await events.get()
        assert document.kind == "document"
        assert document.current["target"].desired == "25"
        delta = await events.get()
        assert (delta.kind, delta.delta) == ("delta", {"target": "25"})
        reported = await client.report("thermostat", {"target": "25"})
        assert reported["target"].reported == "25"
        settled = await events.get()
        assert settled.kind == "document"
        assert settled.current["target"].reported == "25"


async def test_a_subscription_to_every_device_sees_namespaced_ones(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with TwinClient(broker) as client, client.subscription(kinds=("document",)) as events:
        await client.report("plant/boiler", {"temperature": "71.5"})
        event = await asyncio.wait_for(events.get(), 5)
    assert event.device_id == "plant/boiler"
    assert event.current["temperature"].reported == "71.5"


async def test_errors_come_back_as_named_exceptions(twin_service: TwinService, broker: BrokerAddress) -> None:
    async with TwinClient(broker) as client:
        with pytest.raises(UnknownDevice, match="ghost"):
            await client.get("ghost")
        with pytest.raises(RequestRefused, match="above the maximum 30") as refused:
            await client.set_desired("thermostat", {"target": "31"})
        assert refused.value.code == 400


async def test_members_lists_the_devices_of_a_node(twin_service: TwinService, broker: BrokerAddress) -> None:
    async with TwinClient(broker) as client:
        members = await client.members("edge-node-1")
    assert [m.id for m in members] == ["default/thermostat", "plant/boiler"]


async def test_no_answer_is_a_clear_error(broker: BrokerAddress) -> None:
    async with TwinClient(broker, timeout=0.3) as client:
        with pytest.raises(RequestRefused, match="is the twin service running") as refused:
            await client.get("thermostat")
    assert refused.value.code == 504


async def test_state_changes_arrive_as_events_and_get_tells_the_state(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with TwinClient(broker) as client, client.subscription("thermostat", ("state",)) as events:
        assert (await client.device("thermostat")).state == "unknown"
        async with mqtt_probe(broker) as probe:
            await probe.send("$hw/events/device/default/thermostat/state/update", {"state": "online"})
        event = await asyncio.wait_for(events.get(), 5)
        device = await client.device("thermostat")
    assert (event.kind, event.device_id, event.state) == ("state", "default/thermostat", "online")
    assert device.state == "online" and device.last_online == event.last_online != ""


async def test_nodes_lists_the_twin_services_on_the_broker(
    twin_service: TwinService, broker: BrokerAddress
) -> None:
    async with TwinClient(broker) as client:
        assert await client.nodes() == ["edge-node-1"]
        assert await client.wait_for_twin(0)


async def test_the_members_of_a_node_with_a_large_list_are_listed(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    """200 devices of 20 properties: their list (each Device and DeviceModel) is over 1 MiB, far
    more than any request the twin takes in, as a node of 1,000 small devices makes."""
    properties = {f"p{i:02d}": "INT" for i in range(20)}
    thermo = model("thermo", "modbus", properties)
    visitors = {name: {"register": "HoldingRegister", "offset": i} for i, name in enumerate(properties)}
    devices = [device(f"t{i:04d}", "thermo", "modbus", {"ip": "127.0.0.1"}, visitors) for i in range(200)]
    manifests = Manifests({thermo.key: thermo}, {d.id: d for d in devices})
    async with start_twin(broker, manifests, data_dir=tmp_path) as service, TwinClient(broker) as client:
        members = await client.members(service.node)
    assert len(members) == 200
    assert sum(len(orjson.dumps(m.model_dump(mode="json"))) for m in members) > 1024 * 1024
