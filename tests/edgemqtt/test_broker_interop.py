"""The embedded MQTT broker as clients see it: paho-mqtt and edgetwin's own MqttClient.

Tests that take the ``broker`` fixture run against mosquitto and the embedded broker alike; the
byte-level protocol (malformed packets, wills, take-over, sessions) is in test_broker_protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgemqtt.broker import EmbeddedBroker, embedded_broker, topic_matches
from edgemqtt.client import BrokerAddress, Message, MqttClient
from edgemqtt.errors import BrokerUnavailable

TIMEOUT = 5.0  # a guard against hanging, never an assertion about speed


# A broker bug that escapes as an exception (ours logged, or asyncio's) fails the test.
pytestmark = pytest.mark.usefixtures("no_errors_logged")


# -- topic matching (pure) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a", False),
        ("a/+", "a/b/c", False),
        ("+/+", "/b", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("a/#", "a", True),  # `#` also matches the parent level
        ("a/#", "a/b/c", True),
        ("a/+/c/#", "a/b/c", True),
        ("a/+/c/#", "a/b/d/e", False),
        ("#", "a/b", True),
        ("#", "/", True),
        ("#", "$hw/events/device/led/twin/update", False),
        ("+/events/#", "$hw/events/x", False),
        ("$hw/#", "$hw/events/device/led/twin/update", True),
        ("$hw/events/device/+/twin/+", "$hw/events/device/led/twin/update", True),
        ("$hw/events/device/+/twin/+", "$hw/events/device/default/led/twin/update", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("A/b", "a/b", False),
    ],
)
def test_topic_filters_match_as_mosquitto_does(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


# -- paho-mqtt, as third-party mappers and apps use it -------------------------------------------


class Paho:
    """A threaded paho client whose events are awaited from the test's loop (which may run the broker)."""

    def __init__(self, address: BrokerAddress, client_id: str, *, clean_session: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self.address = address
        self.messages: asyncio.Queue[paho.MQTTMessage] = asyncio.Queue()
        self.connects: asyncio.Queue[bool] = asyncio.Queue()  # session-present flags
        self._acks: dict[int, Any] = {}
        self._changed = asyncio.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_ack
        self.client.on_unsubscribe = self._on_ack
        self.client.on_publish = self._on_publish

    def _call(self, callback: Any, *args: Any) -> None:
        self._loop.call_soon_threadsafe(callback, *args)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._call(self.connects.put_nowait, bool(flags.session_present) if not reason.is_failure else None)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._call(self.messages.put_nowait, message)

    def _on_ack(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._call(self._record, mid, [int(r.value) for r in reasons])

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._call(self._record, mid, None)

    def _record(self, mid: int, value: Any) -> None:
        self._acks[mid] = value
        self._changed.set()

    async def _ack(self, mid: int) -> Any:
        async with asyncio.timeout(TIMEOUT):
            while mid not in self._acks:
                self._changed.clear()
                await self._changed.wait()
        return self._acks.pop(mid)

    async def connect(self) -> bool:
        """Connect and return the session-present flag."""
        self.client.connect_async(self.address.host, self.address.port, keepalive=30)
        self.client.loop_start()
        async with asyncio.timeout(TIMEOUT):
            present = await self.connects.get()
        assert present is not None, "connection refused"
        return present

    async def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        _, mid = self.client.subscribe(list(filters))
        assert mid is not None
        granted: list[int] = await self._ack(mid)
        return granted

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        await self._ack(info.mid)  # paho reports QoS 0 once written, QoS 1 on PUBACK, QoS 2 on PUBCOMP

    async def message(self) -> paho.MQTTMessage:
        async with asyncio.timeout(TIMEOUT):
            return await self.messages.get()

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@contextlib.asynccontextmanager
async def paho_client(
    address: BrokerAddress, client_id: str = "", *, clean_session: bool = True
) -> AsyncIterator[Paho]:
    client = Paho(address, client_id or f"paho-{uuid.uuid4().hex[:10]}", clean_session=clean_session)
    try:
        await client.connect()
        yield client
    finally:
        await client.stop()


@pytest.mark.parametrize("publish_qos", [0, 1, 2])
async def test_paho_messages_arrive_at_the_lower_of_publish_and_granted_qos(
    broker: BrokerAddress, prefix: str, publish_qos: int
) -> None:
    async with paho_client(broker) as sub, paho_client(broker) as pub:
        granted = await sub.subscribe((f"{prefix}/0", 0), (f"{prefix}/1", 1), (f"{prefix}/2", 2))
        assert granted[:2] == [0, 1]
        assert granted[2] in (1, 2)  # the embedded broker grants 1, mosquitto 2
        for level in range(3):
            await pub.publish(f"{prefix}/{level}", b"%d" % level, qos=publish_qos)
        received = [await sub.message() for _ in range(3)]
    assert [(m.topic, m.payload) for m in received] == [(f"{prefix}/{n}", b"%d" % n) for n in range(3)]
    assert [m.qos for m in received] == [min(publish_qos, q) for q in granted]
    assert not any(m.retain for m in received)


async def test_paho_persistent_session_resumes_with_queued_messages(
    broker: BrokerAddress, prefix: str
) -> None:
    client_id = f"{prefix}-mapper"
    async with paho_client(broker, client_id, clean_session=False) as mapper:
        await mapper.subscribe((f"$hw/events/device/{prefix}/twin/update/delta", 1))
    async with paho_client(broker) as app:
        for n in range(3):
            await app.publish(f"$hw/events/device/{prefix}/twin/update/delta", b"%d" % n, qos=1)
    resumed = Paho(broker, client_id, clean_session=False)
    try:
        assert await resumed.connect() is True
        payloads = [(await resumed.message()).payload for _ in range(3)]
    finally:
        await resumed.stop()
    assert payloads == [b"0", b"1", b"2"]
    async with paho_client(broker, client_id, clean_session=True):
        pass  # drops the session


async def test_paho_retained_message_reaches_a_late_subscriber(broker: BrokerAddress, prefix: str) -> None:
    topic = f"$hw/events/device/{prefix}/state/update"
    async with paho_client(broker) as pub:
        await pub.publish(topic, b'{"state":"online"}', qos=1, retain=True)
        async with paho_client(broker) as late:
            await late.subscribe((topic, 1))
            message = await late.message()
        await pub.publish(topic, b"", qos=1, retain=True)
    assert (message.topic, message.payload, message.retain, message.qos) == (
        topic,
        b'{"state":"online"}',
        True,
        1,
    )


# -- edgetwin's MqttClient on KubeEdge topics -----------------------------------------------------


async def test_mqtt_client_round_trips_hw_topics_and_hash_does_not_see_them(
    broker: BrokerAddress, prefix: str
) -> None:
    hw_messages: asyncio.Queue[Message] = asyncio.Queue()
    all_messages: asyncio.Queue[Message] = asyncio.Queue()
    device = f"$hw/events/device/default/{prefix}"
    async with (
        MqttClient(broker, on_message=hw_messages.put_nowait) as twin,
        MqttClient(broker, on_message=all_messages.put_nowait) as everything,
        MqttClient(broker) as mapper,
    ):
        await twin.subscribe("$hw/events/device/+/+/twin/update")
        await everything.subscribe("#")
        await mapper.publish_confirmed(f"{device}/twin/update", b'{"event_id":"","timestamp":0}')
        await mapper.publish_confirmed(f"{prefix}/fence", b"")
        async with asyncio.timeout(TIMEOUT):
            received = await hw_messages.get()
            seen: list[str] = []
            while not seen or seen[-1] != f"{prefix}/fence":
                seen.append((await all_messages.get()).topic)
    assert received == Message(f"{device}/twin/update", b'{"event_id":"","timestamp":0}')
    assert [t for t in seen if prefix in t] == [f"{prefix}/fence"]


async def test_mqtt_client_reconnects_and_resubscribes_when_the_embedded_broker_restarts(prefix: str) -> None:
    broker = EmbeddedBroker("127.0.0.1", 0)
    await broker.start()
    address = broker.address
    received: asyncio.Queue[Message] = asyncio.Queue()
    try:
        async with MqttClient(address, on_message=received.put_nowait, reconnect_delays=(0.05,)) as client:
            await client.subscribe(f"{prefix}/t")
            await broker.stop()
            async with asyncio.timeout(TIMEOUT):
                while client.connected:  # until the client has noticed
                    await asyncio.sleep(0.01)
            broker = EmbeddedBroker("127.0.0.1", address.port)  # same port, fresh state
            await broker.start()
            async with asyncio.timeout(TIMEOUT):
                await client.wait_connected()
            # The restored subscription went out before this one, on the same connection.
            await client.subscribe(f"{prefix}/fence")
            async with MqttClient(address) as publisher:
                await publisher.publish_confirmed(f"{prefix}/t", b"again")
                async with asyncio.timeout(TIMEOUT):
                    message = await received.get()
    finally:
        await broker.stop()
    assert message == Message(f"{prefix}/t", b"again")


# -- lifecycle ------------------------------------------------------------------------------------


async def test_port_zero_picks_a_free_port_and_the_address_reports_it() -> None:
    async with embedded_broker("127.0.0.1", 0) as address:
        assert address.port != 0
        async with MqttClient(address) as client:
            assert client.connected


async def test_a_busy_port_raises_broker_unavailable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match=f"cannot listen on 127.0.0.1:{port}"):
            async with embedded_broker("127.0.0.1", port):
                pass


async def test_stop_closes_every_connection() -> None:
    broker = EmbeddedBroker("127.0.0.1", 0)
    await broker.start()
    address = broker.address
    silent = await asyncio.open_connection(address.host, address.port)  # never sends CONNECT
    connected = await asyncio.open_connection(address.host, address.port)
    connected[1].write(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01x")  # CONNECT, client id "x"
    async with asyncio.timeout(TIMEOUT):
        assert await connected[0].readexactly(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
    await broker.stop()
    for reader, writer in (silent, connected):
        async with asyncio.timeout(TIMEOUT):
            assert await reader.read() == b""  # closed by the broker
        writer.close()
