"""MQTT 3.1.1 shared subscriptions ``$share/GROUP/FILTER``, on mosquitto and the embedded broker."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from edgemqtt.address import BrokerAddress
from edgemqtt.client import Message, MqttClient
from tests.edgemqtt.raw import PUBLISH, Raw, raw_client, subscribe_packet

TIMEOUT = 10.0  # a guard against hanging, never an assertion about speed

pytestmark = pytest.mark.usefixtures("no_errors_logged")


async def collect(queue: asyncio.Queue[tuple[str, Message]], count: int) -> list[tuple[str, Message]]:
    async with asyncio.timeout(TIMEOUT):
        return [await queue.get() for _ in range(count)]


async def test_each_message_goes_to_one_member_in_turn(broker: BrokerAddress, prefix: str) -> None:
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    group = f"$share/workers/{prefix}/jobs/#"
    async with (
        MqttClient(broker, on_message=lambda m: received.put_nowait(("a", m))) as a,
        MqttClient(broker, on_message=lambda m: received.put_nowait(("b", m))) as b,
        MqttClient(broker) as publisher,
    ):
        await a.subscribe(group)
        await b.subscribe(group)
        for number in range(10):
            await publisher.publish_confirmed(f"{prefix}/jobs/{number}", str(number))
        got = await collect(received, 10)
        await publisher.publish_confirmed(f"{prefix}/fence", b"")  # nobody subscribes: settles the broker
        assert sorted(m.payload for _, m in got) == sorted(str(n).encode() for n in range(10))  # once each
        assert Counter(member for member, _ in got) == {"a": 5, "b": 5}  # round-robin
        assert received.empty()


async def test_a_member_that_leaves_gets_no_more(broker: BrokerAddress, prefix: str) -> None:
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    group = f"$share/g/{prefix}/jobs"
    async with (
        MqttClient(broker, on_message=lambda m: received.put_nowait(("stays", m))) as stays,
        MqttClient(broker) as publisher,
    ):
        await stays.subscribe(group)
        async with MqttClient(broker, on_message=lambda m: received.put_nowait(("leaves", m))) as leaves:
            await leaves.subscribe(group)
            await leaves.unsubscribe(group)
        leaver = MqttClient(broker, on_message=lambda m: received.put_nowait(("gone", m)))
        await leaver.connect()
        await leaver.subscribe(group)
        await leaver.close()
        for number in range(6):
            await publisher.publish_confirmed(f"{prefix}/jobs", str(number))
        got = await collect(received, 6)
        assert [member for member, _ in got] == ["stays"] * 6


async def test_a_client_with_a_plain_and_a_shared_subscription_gets_one_copy(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as both, raw_client(broker) as publisher:
        filters = (f"$share/g/{prefix}/t", 1), (f"{prefix}/t", 1), (f"{prefix}/end", 0)
        assert await both.subscribe(*filters) == [1, 1, 0]
        await publisher.publish(f"{prefix}/t", b"x", qos=1)
        await publisher.publish(f"{prefix}/end", b"", qos=1)
        assert [p.payload for p in await both.until(f"{prefix}/end")] == [b"x"]


async def test_retained_messages_are_sent_on_a_shared_subscription_as_mosquitto_does(
    broker: BrokerAddress, prefix: str
) -> None:
    async with raw_client(broker) as publisher:
        await publisher.publish(f"{prefix}/config", b"kept", qos=1, retain=True)
        try:
            async with raw_client(broker) as member:
                await member.subscribe((f"$share/g/{prefix}/config", 1), (f"{prefix}/fence", 0))
                await publisher.publish(f"{prefix}/fence", b"", qos=1)
                assert [p.payload for p in await member.until(f"{prefix}/fence")] == [b"kept"]
        finally:
            await publisher.publish(f"{prefix}/config", b"", qos=1, retain=True)


async def test_unacknowledged_messages_of_a_member_that_drops_go_to_another(
    embedded_mqtt: BrokerAddress, prefix: str
) -> None:
    # The embedded broker's choice (mosquitto 2.0 drops them with the clean session): QoS 1 messages a
    # leaving clean-session member never acknowledged are sent to another member of the group.
    group = f"$share/g/{prefix}/jobs"
    received: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
    async with raw_client(embedded_mqtt) as publisher:
        silent = await Raw.open(embedded_mqtt)
        await silent.connect(f"{prefix}-silent")
        await silent.subscribe((group, 1))
        await publisher.publish(f"{prefix}/jobs", b"first", qos=1)
        taken = await silent.expect(PUBLISH)  # never acknowledged
        assert taken.payload == b"first"
        async with MqttClient(embedded_mqtt, on_message=lambda m: received.put_nowait(("other", m))) as other:
            await other.subscribe(group)
            silent.writer.transport.abort()  # dropped, with "first" unacknowledged
            got = await collect(received, 1)
            assert got == [("other", Message(f"{prefix}/jobs", b"first"))]


async def test_a_malformed_shared_filter_closes_the_connection(embedded_mqtt: BrokerAddress) -> None:
    for bad in ("$share/", "$share/g", "$share//t", "$share/g+/t"):
        client = await Raw.open(embedded_mqtt)
        await client.connect(f"bad-{len(bad)}")
        client.send(subscribe_packet(1, (bad, 0)))
        assert await client.closed_by_broker() == []
        client.close()
