"""The MQTT transport: TCP_NODELAY on every connection, and surviving a broker restart."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgemqtt.broker import embedded_broker, password_entry
from edgemqtt.client import BrokerAddress, Message, MqttClient, Will
from edgemqtt.errors import (
    BadUsernameOrPassword,
    BrokerUnavailable,
    ConnectionRefused,
    NotAuthorised,
    SubscriptionRefused,
)
from tests.fixtures.brokers import Mosquitto
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.client import TwinClient


async def test_every_connection_sets_tcp_nodelay(broker: BrokerAddress) -> None:
    async with MqttClient(broker) as client:
        sock = client.socket
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_connecting_to_nothing_raises_broker_unavailable() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        await MqttClient(BrokerAddress("127.0.0.1", port)).connect(timeout=2)


async def test_subscriptions_come_back_after_the_broker_restarts(private_mosquitto: Mosquitto) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(private_mosquitto.address, on_message=received.put_nowait) as subscriber:
        await subscriber.subscribe("plant/#")
        private_mosquitto.restart()
        async with asyncio.timeout(20):
            await subscriber.wait_connected()
            while True:
                # The subscriber's re-subscription races this publisher: publish until it lands.
                async with MqttClient(private_mosquitto.address) as publisher:
                    await publisher.publish_confirmed("plant/pump", b"after restart")
                try:
                    async with asyncio.timeout(0.5):
                        message = await received.get()
                        break
                except TimeoutError:
                    continue
    assert message == Message("plant/pump", b"after restart")


async def test_twin_service_keeps_serving_after_the_broker_restarts(
    private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    broker = private_mosquitto.address
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path):
        private_mosquitto.restart()
        async with asyncio.timeout(20):
            while True:
                try:
                    async with TwinClient(broker, timeout=0.5) as client:
                        state = await client.get("default/thermostat")
                        break
                except Exception:  # noqa: BLE001 - the twin may not have re-subscribed yet
                    await asyncio.sleep(0.1)
        assert state["target"].desired == "20"


async def test_qos1_messages_published_while_the_broker_is_away_are_delivered_after(
    private_mosquitto: Mosquitto,
) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    address = private_mosquitto.address
    async with MqttClient(address, on_message=received.put_nowait) as subscriber:
        await subscriber.subscribe("plant/#")
        async with MqttClient(address) as publisher:
            private_mosquitto.stop()
            async with asyncio.timeout(10):
                while publisher.connected:
                    await asyncio.sleep(0.01)
            for n in range(5):
                publisher.publish("plant/pump", f"reading {n}".encode(), qos=1)
            publisher.publish("plant/pump", b"lost at QoS 0", qos=0)
            private_mosquitto.start()
            async with asyncio.timeout(20):
                await publisher.wait_connected()
                await subscriber.wait_connected()
                # The subscriber's session is new: wait until its subscription is back, then check.
                payloads = []
                while len(payloads) < 5:
                    payloads.append((await received.get()).payload)
    assert payloads == [f"reading {n}".encode() for n in range(5)]


async def test_publish_confirmed_waits_for_the_broker(broker: BrokerAddress) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(broker, on_message=received.put_nowait) as client:
        await client.subscribe("$hw/events/device/+/twin/update", qos=1)
        await client.publish_confirmed("$hw/events/device/led/twin/update", b"{}")
        message = await asyncio.wait_for(received.get(), 5)
    assert message == Message("$hw/events/device/led/twin/update", b"{}")


async def test_a_burst_of_qos1_publishes_leaves_no_large_table_once_acknowledged(
    broker: BrokerAddress,
) -> None:
    # A node publishes its thousand devices' events at once after a sync; the messages awaiting
    # their PUBACK must not keep a table of that size for the months the node then runs.
    async with MqttClient(broker) as client:
        empty = sys.getsizeof(client._inflight)
        for n in range(5000):
            client.publish("burst/t", b"%d" % n, qos=1)
        assert sys.getsizeof(client._inflight) > 100_000
        await client.publish_confirmed("burst/t", b"last")  # the broker acknowledges in order
        assert not client._inflight
        assert sys.getsizeof(client._inflight) == empty


def test_publishing_to_a_wildcard_or_at_qos_2_is_refused() -> None:
    client = MqttClient(BrokerAddress())
    with pytest.raises(ValueError, match="wildcards"):
        client.publish("plant/#", b"x")
    with pytest.raises(ValueError, match="QoS 2"):
        client.publish("plant/pump", b"x", qos=2)


async def test_qos2_deliveries_from_the_broker_arrive_once(mosquitto: Mosquitto) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(mosquitto.address, on_message=received.put_nowait) as subscriber:
        await subscriber.subscribe("qos2/test", qos=2)
        publisher = paho.Client(CallbackAPIVersion.VERSION2)
        publisher.connect(mosquitto.address.host, mosquitto.address.port)
        publisher.loop_start()
        try:
            info = publisher.publish("qos2/test", b"exactly once", qos=2)
            await asyncio.to_thread(info.wait_for_publish, 5)
            message = await asyncio.wait_for(received.get(), 5)
            await subscriber.publish_confirmed("qos2/done", b"")  # a round trip after the QoS 2 flow
        finally:
            publisher.loop_stop()
            publisher.disconnect()
    assert message.payload == b"exactly once"
    assert received.empty()


@contextlib.asynccontextmanager
async def fake_broker(*replies: bytes) -> AsyncIterator[BrokerAddress]:
    """A server that answers the client's first packets with ``replies``, then waits for it to leave."""
    done = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for reply in replies:
                await reader.read(1024)
                writer.write(reply)
                await writer.drain()
            await reader.read()  # until the client hangs up
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        yield BrokerAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        await asyncio.wait_for(done.wait(), 5)


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (4, BadUsernameOrPassword, "bad user name or password"),
        (5, NotAuthorised, "not authorised"),
        (2, ConnectionRefused, "client identifier rejected"),
        (3, BrokerUnavailable, "server unavailable"),
    ],
)
async def test_a_refused_connection_says_why_and_whether_to_retry(
    code: int, error: type[Exception], reason: str
) -> None:
    async with fake_broker(bytes([0x20, 2, 0, code])) as address:
        with pytest.raises(error, match=f"refused the connection: {reason}"):
            await MqttClient(address).connect(timeout=5)


async def test_a_refused_suback_is_a_permanent_error_naming_the_filter() -> None:
    # CONNACK accepted; the SUBSCRIBE (packet id 1) answered 0x80 (failure).
    async with (
        fake_broker(bytes([0x20, 2, 0, 0]), bytes([0x90, 3, 0, 1, 0x80])) as address,
        MqttClient(address) as client,
    ):
        with pytest.raises(SubscriptionRefused, match="forbidden/#") as refused:
            await client.subscribe("forbidden/#")
    assert refused.value.filters == ("forbidden/#",)


async def test_a_broker_sending_garbage_is_dropped_not_crashing() -> None:
    async with fake_broker(b"HTTP/1.1 400 Bad Request\r\n\r\n") as address:
        with pytest.raises(BrokerUnavailable):
            await MqttClient(address).connect(timeout=2)


async def test_a_connect_cancelled_while_waiting_for_the_connack_hangs_up() -> None:
    arrived, hung_up = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)  # the CONNECT, never answered
        arrived.set()
        await reader.read()  # until the client hangs up
        hung_up.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    async with server:
        client = MqttClient(BrokerAddress("127.0.0.1", server.sockets[0].getsockname()[1]))
        connecting = asyncio.create_task(client.connect(timeout=60))
        await asyncio.wait_for(arrived.wait(), 10)
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await connecting
        await asyncio.wait_for(hung_up.wait(), 10)
    assert not client.connected


# -- will, sessions, resending, refusals -----------------------------------------------------------


async def test_the_will_is_published_when_the_client_is_lost(broker: BrokerAddress, prefix: str) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    async with MqttClient(broker, on_message=received.put_nowait) as watcher:
        await watcher.subscribe(f"{prefix}/status/#")
        will = Will(f"{prefix}/status/gateway", b"offline", qos=1, retain=False)
        doomed = MqttClient(broker, will=will, reconnect_delays=(60.0,))
        await doomed.connect()
        doomed.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]  # lost, no DISCONNECT
        async with asyncio.timeout(10):
            assert await received.get() == Message(f"{prefix}/status/gateway", b"offline")
        await doomed.close()


async def test_a_persistent_session_is_not_subscribed_again_when_the_broker_kept_it(
    embedded_mqtt: BrokerAddress, prefix: str
) -> None:
    subscribes: list[list[tuple[str, int]]] = []
    client = MqttClient(
        embedded_mqtt, client_id=f"{prefix}-keep", clean_session=False, reconnect_delays=(0.01,)
    )
    original = client._send_subscribe

    def counting(topics: list[tuple[str, int]]) -> int:
        subscribes.append(topics)
        return original(topics)

    client._send_subscribe = counting  # type: ignore[method-assign]
    received: asyncio.Queue[Message] = asyncio.Queue()
    client._on_message = received.put_nowait
    await client.connect()
    try:
        await client.subscribe(f"{prefix}/t")
        assert not client.session_present
        client.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        async with asyncio.timeout(10):
            while not (client.connected and client.session_present):
                await client.wait_connected()
                await asyncio.sleep(0.01)
        assert subscribes == [[(f"{prefix}/t", 1)]]  # once, not again: the session was present
        async with MqttClient(embedded_mqtt) as publisher:
            await publisher.publish_confirmed(f"{prefix}/t", b"still subscribed")
        async with asyncio.timeout(10):
            assert (await received.get()).payload == b"still subscribed"
    finally:
        await client.close()


async def test_a_lost_session_is_subscribed_again(private_mosquitto: Mosquitto, prefix: str) -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    client = MqttClient(
        private_mosquitto.address,
        client_id=f"{prefix}-lost",
        clean_session=False,
        on_message=received.put_nowait,
        reconnect_delays=(0.05,),
    )
    async with client:
        await client.subscribe(f"{prefix}/t")
        private_mosquitto.restart()  # persistence false: the session is gone
        async with asyncio.timeout(20):
            while client.connected:  # until the loop has seen the old connection end
                await asyncio.sleep(0.01)
            await client.wait_connected()
        assert not client.session_present
        async with MqttClient(private_mosquitto.address) as publisher:
            await publisher.publish_confirmed(f"{prefix}/t", b"resubscribed")
        async with asyncio.timeout(10):
            assert (await received.get()).payload == b"resubscribed"


async def test_unacknowledged_publishes_are_resent_with_dup_even_when_the_session_survived() -> None:
    """MQTT-3.1.1 §4.4: on reconnect with a session, unacknowledged PUBLISHes are sent again, DUP set."""
    seen: list[int] = []

    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1024)  # CONNECT
            writer.write(bytes([0x20, 2, 1, 0]))  # CONNACK, session present
            data = await reader.readexactly(1)  # the PUBLISH's first byte: flags tell DUP
            seen.append(data[0])
            if len(seen) == 1:
                writer.transport.abort()  # lost before the PUBACK
                return
            rest = await reader.read(1024)
            packet_id = rest[1 + 2 + 1 : 1 + 2 + 1 + 2]  # remaining length, topic "t" with its length
            writer.write(bytes([0x40, 2]) + packet_id)  # PUBACK
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(broker, "127.0.0.1", 0)
    async with server:
        address = BrokerAddress("127.0.0.1", server.sockets[0].getsockname()[1])
        async with MqttClient(
            address, clean_session=False, client_id="dup", reconnect_delays=(0.01,)
        ) as client:
            async with asyncio.timeout(10):
                await client.publish_confirmed("t", b"x")
    assert [first >> 4 for first in seen] == [3, 3]
    assert [bool(first & 0x08) for first in seen] == [False, True]


async def test_a_refused_login_is_logged_once_and_retried_slowly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(password_entry("svc", "right") + "\n")
    async with embedded_broker("127.0.0.1", 0, password_file=passwords) as address:
        client = MqttClient(address.with_credentials("svc", "wrong"), refused_delay=0.2)
        with pytest.raises(NotAuthorised):
            await client.connect()  # a one-shot caller hears at once

        def refusals() -> int:
            return sum("refused: not authorised" in r.getMessage() for r in caplog.records)

        before = refusals()
        task = asyncio.create_task(client.connect(retry=True))  # a long-lived one keeps trying, slowly
        try:
            async with asyncio.timeout(10):
                while refusals() < before + 3:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.close()
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.name == "edgemqtt.client"]
    assert len(errors) == 1
    assert "not authorised; trying again every 0.2 s" in errors[0].getMessage()
    assert "wrong" not in caplog.text


async def test_the_connect_hook_is_told_of_every_connection_and_whether_the_session_survived(
    embedded_mqtt: BrokerAddress, prefix: str
) -> None:
    connections: asyncio.Queue[bool] = asyncio.Queue()

    def hook(session_present: bool) -> None:
        connections.put_nowait(session_present)
        raise RuntimeError("a hook's bug")  # must not cost the connection

    client = MqttClient(
        embedded_mqtt,
        client_id=f"{prefix}-hook",
        clean_session=False,
        on_connect=hook,
        reconnect_delays=(0.01,),
    )
    async with client:
        async with asyncio.timeout(10):
            assert await connections.get() is False
            client.socket.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]  # lost: reconnects
            assert await connections.get() is True  # the broker kept the session
        await client.publish_confirmed(f"{prefix}/t", b"still connected")
