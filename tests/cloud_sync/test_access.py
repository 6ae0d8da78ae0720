"""Who may use the cloud broker: the files cloud-sync keeps, enforced by real mosquitto and the
embedded broker. Each node in its own subtree, with a password derived from the join token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from cloud_sync import AccessFiles, BrokerReload
from edgemqtt import BrokerAddress, EmbeddedBroker, Message, MqttClient, NotAuthorised, SubscriptionRefused
from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from tests.cloud_sync.peer import NodePeer, value
from tests.edgemqtt.raw import Raw
from tests.fixtures.brokers import Mosquitto
from twin.link import DeviceReport, Report, node_password, up_topic


@dataclass
class Broker:
    kind: str
    address: BrokerAddress
    reload: BrokerReload


@pytest.fixture(params=["mosquitto", "embedded"])
async def cloud_broker(
    request: pytest.FixtureRequest, cloud_files: AccessFiles, cloud_mosquitto: Mosquitto
) -> AsyncIterator[Broker]:
    """The cloud broker reading cloud-sync's files: mosquitto (SIGHUP), or the embedded one."""
    if request.param == "mosquitto":

        async def hup() -> None:
            cloud_mosquitto.reload()

        yield Broker("mosquitto", cloud_mosquitto.address, hup)
        return
    broker = EmbeddedBroker(
        "127.0.0.1", 0, password_file=cloud_files.password_file, acl_file=cloud_files.acl_file
    )
    await broker.start()

    async def reload() -> None:
        broker.reload()

    try:
        yield Broker("embedded", broker.address, reload)
    finally:
        await broker.stop()


def login(broker: Broker, node: str, password: str) -> MqttClient:
    return MqttClient(broker.address.with_credentials(node, password), reconnect_delays=(60.0,))


async def test_a_node_with_its_derived_password_is_let_in_and_one_without_or_with_a_wrong_token_is_not(
    stack: CloudStack, cloud_broker: Broker
) -> None:
    await stack.start_cloud(broker=cloud_broker.address, reload=cloud_broker.reload)
    async with NodePeer(cloud_broker.address, "node-a", stack.token) as node:
        assert (await node.hello()).devices == []
    for password in (None, node_password("not-the-token", "node-a"), stack.token):
        address = (
            cloud_broker.address
            if password is None
            else cloud_broker.address.with_credentials("node-a", password)
        )
        with pytest.raises(NotAuthorised):
            await MqttClient(address).connect()


async def test_a_node_cannot_read_another_nodes_subtree(stack: CloudStack, cloud_broker: Broker) -> None:
    await stack.start_cloud(broker=cloud_broker.address, reload=cloud_broker.reload)
    seen: asyncio.Queue[Message] = asyncio.Queue()
    async with login(cloud_broker, "node-a", node_password(stack.token, "node-a")) as spy:
        spy._on_message = seen.put_nowait
        if cloud_broker.kind == "embedded":
            with pytest.raises(SubscriptionRefused):  # the embedded broker says so at once
                await spy.subscribe("edgetwin/v1/nodes/node-b/#")
        else:
            await spy.subscribe("edgetwin/v1/nodes/node-b/#")  # mosquitto grants it, and delivers nothing
        await spy.subscribe("edgetwin/v1/nodes/+/down/#")  # wider: only its own part arrives
        async with (
            NodePeer(cloud_broker.address, "node-b", stack.token) as b,
            NodePeer(cloud_broker.address, "node-a", stack.token) as a,
        ):
            await b.hello()
            await a.hello()
        first = await asyncio.wait_for(seen.get(), 10)
    assert first.topic == "edgetwin/v1/nodes/node-a/down/sync"
    assert all("/node-b/" not in m.topic for m in [first, *[seen.get_nowait() for _ in range(seen.qsize())]])


async def test_a_node_cannot_write_another_nodes_subtree(stack: CloudStack, cloud_broker: Broker) -> None:
    await stack.apply(
        MODEL + "---" + device_yaml("thermo-b", "node-b") + "---" + device_yaml("thermo-a", "node-a")
    )
    cloud = await stack.start_cloud(broker=cloud_broker.address, reload=cloud_broker.reload)
    forged = Report(seq=1, devices={"default/thermo-b": DeviceReport(twins={"temperature": value("666")})})
    async with NodePeer(cloud_broker.address, "node-a", stack.token) as a:
        await a.client.publish_confirmed(up_topic("node-b", "report"), forged.model_dump_json())  # dropped
        seq = await a.report({"default/thermo-a": DeviceReport(twins={"temperature": value("20")})})
        await a.wait_ack("report", seq)
    assert cloud.metrics.messages_in.labels("report")._value.get() == 1
    assert "status" not in await stack.device("thermo-b")


async def test_a_node_named_by_a_new_device_is_admitted(stack: CloudStack, cloud_broker: Broker) -> None:
    await stack.apply(MODEL)
    cloud = await stack.start_cloud(broker=cloud_broker.address, reload=cloud_broker.reload)
    password = node_password(stack.token, "node-c")
    with pytest.raises(NotAuthorised):
        await login(cloud_broker, "node-c", password).connect()
    cloud.admission.applied.clear()
    await stack.apply(device_yaml("thermo-c", "node-c"))
    await asyncio.wait_for(cloud.admission.applied.wait(), 20)
    async with NodePeer(
        cloud_broker.address, "node-c", stack.token
    ) as node:  # retries while mosquitto reloads
        sync = await node.hello()
    assert [a.device.id for a in sync.devices] in (
        ["default/thermo-c"],
        [],
    )  # [] while the stamp is on its way


async def test_a_rotated_token_shuts_out_the_old_password(stack: CloudStack, cloud_broker: Broker) -> None:
    cloud = await stack.start_cloud(broker=cloud_broker.address, reload=cloud_broker.reload)
    old = stack.token
    connected = await Raw.open(cloud_broker.address)
    await connected.connect(
        "edgetwin-node-node-a", username="node-a", password=node_password(old, "node-a").encode()
    )
    cloud.admission.applied.clear()
    new = AccessFiles(stack.data_dir).rotate_token()
    cloud.reload_access()
    await asyncio.wait_for(cloud.admission.applied.wait(), 20)
    await connected.closed_by_broker()  # its password is no longer the right one
    connected.writer.close()
    async with NodePeer(cloud_broker.address, "node-a", new):  # retries while mosquitto reloads
        pass
    with pytest.raises(NotAuthorised):
        await login(cloud_broker, "node-a", node_password(old, "node-a")).connect()


async def test_names_that_cannot_be_node_names_are_not_admitted(stack: CloudStack) -> None:
    await stack.start_cloud(admit=("node-a", "Bad_Node", "a/b", "#"))
    acl = AccessFiles(stack.data_dir).acl_file.read_text()
    assert "user node-a" in acl
    for bad in ("Bad_Node", "a/b", "#"):
        assert f"user {bad}\n" not in acl
