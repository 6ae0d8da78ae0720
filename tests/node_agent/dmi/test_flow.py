"""A mapper-framework mapper against the node agent's DMI socket: register, reports, changes, restart.

Every call goes through real Unix sockets: the mapper (tests/fixtures/dmi.py) calls the agent's
socket and serves its own, the agent calls it back; the twin publishes on a real mosquitto.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from edgemqtt.client import Message, MqttClient
from node_agent.dmi.server import DmiServer
from tests.fixtures.dmi import DMI_DEVICES, DmiMapper
from twin.manifests import Manifests, load_manifests
from twin.models import Device


class Watcher:
    """An MQTT app: subscribes to the twin's topics and waits for messages."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()

    async def next(self, topic: str, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.messages.get()
                if message.topic == topic:
                    body: dict[str, Any] = orjson.loads(message.payload)
                    return body


@pytest.fixture
async def app(mosquitto: Any) -> AsyncIterator[tuple[MqttClient, Watcher]]:
    watcher = Watcher()
    client = MqttClient(mosquitto.address, client_id="dmi-test-app", on_message=watcher.messages.put_nowait)
    async with client:
        await client.subscribe("$hw/events/device/#")
        yield client, watcher


def _topic(device_id: str, action: str) -> str:
    return f"$hw/events/device/{device_id}/{action}"


def _edited(manifests: Manifests, device_id: str, edit: Callable[[dict[str, Any]], None]) -> Device:
    body = manifests.devices[device_id].model_dump(mode="json")
    edit(body)
    return Device.model_validate(body)


async def test_registering_mapper_gets_the_devices_and_models_of_its_protocol(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    response = await mapper.start()
    # Devices of protocol "sim" on this node only: not the modbus pump, not edge-node-2's boiler.
    assert sorted(f"{d.namespace}/{d.name}" for d in response.deviceList) == [
        "default/boiler",
        "plant/boiler-2",
    ]
    assert [f"{m.namespace}/{m.name}" for m in response.modelList] == [
        "default/boiler-model",
        "plant/boiler-model",
    ]
    assert mapper.crashes == []
    assert mapper.desired("default/boiler", "target") == "40"
    assert mapper.desired("default/boiler", "mode") == ""
    # The model's protocolConfigData and visitors, overridden key by key by the Device's.
    assert mapper.config("default/boiler") == {
        "ip": "192.168.1.20",
        "port": 1502.0,
        "timeout": 1000.0,
        "slaveID": 1.0,
        "enabled": True,
        "mask": 4294967295,
    }
    assert mapper.config("default/boiler", "temperature") == {
        "register": "InputRegister",
        "scale": pytest.approx(0.1),
        "offset": 3.0,
    }
    boiler = mapper.devices["default/boiler"]
    assert boiler.status.reportToCloud and boiler.status.reportCycle == 2000
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)


async def test_reports_reach_the_twin_and_its_mqtt_documents(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper], app: tuple[MqttClient, Watcher]
) -> None:
    _, watcher = app
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    # As the framework's template reports: no namespace, one twin per call, observedDesired as started.
    await mapper.report("boiler", {"temperature": "21.5"}, observed_desired="")
    document = await watcher.next(_topic("default/boiler", "twin/update/document"))
    assert document["twin"]["temperature"]["current"]["actual"]["value"] == "21.5"
    await mapper.report("boiler-2", {"temperature": "-3.25"}, namespace="plant")
    document = await watcher.next(_topic("plant/boiler-2", "twin/update/document"))
    assert document["twin"]["temperature"]["current"]["actual"]["value"] == "-3.25"
    assert dmi_node.service.twins["plant/boiler-2"].properties["temperature"].actual.value == "-3.25"  # type: ignore[union-attr]
    await mapper.report_state("boiler", "online")
    result = await watcher.next(_topic("default/boiler", "state/update/result"))
    assert result["device"]["state"] == "online"
    assert dmi_node.service.twins["default/boiler"].state == "online"
    assert mapper.crashes == []


async def test_a_new_desired_value_reaches_the_mapper_and_a_stale_observed_desired_never_rolls_it_back(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper], app: tuple[MqttClient, Watcher]
) -> None:
    client, watcher = app
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    client.publish(
        _topic("default/boiler", "twin/update"),
        b'{"event_id":"","timestamp":0,"twin":{"target":{"expected":{"value":"55"}}}}',
        qos=1,
    )
    await mapper.wait_for(lambda: "UpdateDevice" in mapper.methods())
    assert mapper.desired("default/boiler", "target") == "55"
    # The mapper had applied 40 before; its report says so. The twin keeps 55 and asks again (delta).
    await mapper.report("boiler", {"target": "40"}, observed_desired="40")
    delta = await watcher.next(_topic("default/boiler", "twin/update/delta"))
    assert delta["delta"] == {"target": "55"}
    target = dmi_node.service.twins["default/boiler"].properties["target"]
    assert (target.expected.value, target.actual.value) == ("55", "40")  # type: ignore[union-attr]
    assert "GetDevice" not in mapper.methods()
    assert mapper.crashes == []


async def test_devices_added_changed_and_removed_reach_the_mapper(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    manifests = load_manifests([DMI_DEVICES])

    def new_desired(body: dict[str, Any]) -> None:
        body["spec"]["properties"][1]["desired"]["value"] = "60"

    def renamed(body: dict[str, Any]) -> None:
        body["metadata"]["name"] = "boiler-3"

    devices = dict(manifests.devices)
    devices["default/boiler"] = _edited(manifests, "default/boiler", new_desired)
    devices["default/boiler-3"] = _edited(manifests, "default/boiler", renamed)
    del devices["plant/boiler-2"]
    models = {k: m for k, m in manifests.models.items() if k != "plant/boiler-model"}
    await dmi_node.service.set_definitions(Manifests(models, devices))

    await mapper.wait_for(
        lambda: {"RemoveDeviceModel", "RegisterDevice", "UpdateDevice"} <= set(mapper.methods())
    )
    assert set(mapper.devices) == {"default/boiler", "default/boiler-3"}
    assert set(mapper.models) == {"default/boiler-model"}
    assert mapper.desired("default/boiler", "target") == "60"
    assert mapper.desired("default/boiler-3", "target") == "40"
    assert mapper.methods().count("UpdateDevice") == 1  # boiler-3 is new, nothing else changed
    assert [c.deviceName for m, c in mapper.calls if m == "RemoveDevice"] == ["boiler-2"]
    assert mapper.crashes == []


async def test_a_mapper_that_dies_is_marked_and_a_restarted_one_that_registers_again_just_works(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper], app: tuple[MqttClient, Watcher]
) -> None:
    client, watcher = app
    first = dmi_mappers(dmi_node.socket)
    await first.start()
    await first.report_state("boiler", "online")
    await first.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    await first.stop()
    await first.wait_for(lambda: dmi_node.links["sim"].state == "dead", dmi_node.changed)
    await dmi_node.reports.drained()
    assert dmi_node.service.twins["default/boiler"].state == "unknown"
    assert dmi_node.service.twins["plant/boiler-2"].state == "unknown"

    # A desired value set while the mapper is down reaches the restarted one at registration...
    client.publish(
        _topic("default/boiler", "twin/update"),
        b'{"event_id":"","timestamp":0,"twin":{"mode":{"expected":{"value":"eco"}}}}',
        qos=1,
    )
    await watcher.next(_topic("default/boiler", "twin/update/document"))
    second = dmi_mappers(dmi_node.socket, socket="sim-mapper.sock")  # the same mapper, started again
    response = await second.start()
    assert len(response.deviceList) == 2
    assert second.desired("default/boiler", "mode") == "eco"
    await second.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    # ...and one set afterwards through UpdateDevice.
    client.publish(
        _topic("default/boiler", "twin/update"),
        b'{"event_id":"","timestamp":0,"twin":{"target":{"expected":{"value":"70"}}}}',
        qos=1,
    )
    await second.wait_for(lambda: "UpdateDevice" in second.methods())
    assert second.desired("default/boiler", "target") == "70"
    await second.report("boiler", {"temperature": "30"})
    await dmi_node.reports.drained()
    assert dmi_node.service.twins["default/boiler"].properties["temperature"].actual.value == "30"  # type: ignore[union-attr]
    assert first.crashes == second.crashes == []


async def test_a_mapper_that_never_serves_its_socket_is_marked_dead(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.register()  # and never serves (the fixture gives it 1 s)
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "dead", dmi_node.changed)
    await dmi_node.reports.drained()
    assert dmi_node.service.twins["default/boiler"].state == "unknown"


async def test_a_mapper_back_on_its_socket_without_registering_is_sent_everything_again(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    await mapper.stop()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "dead", dmi_node.changed)
    mapper.devices.clear()  # a new process knows nothing
    mapper.models.clear()
    await mapper.serve()
    await mapper.wait_for(lambda: len(mapper.devices) == 2)
    assert set(mapper.models) == {"default/boiler-model", "plant/boiler-model"}
    assert mapper.methods().count("CreateDeviceModel") == 2
    assert dmi_node.links["sim"].state == "online"
    assert mapper.crashes == []
