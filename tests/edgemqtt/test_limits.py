"""The embedded broker's limits against hostile clients, each over a real socket.

Each test shows that the offending connection is really closed (the client's socket reads EOF or a
reset) and that the broker no longer holds its bytes (``EmbeddedBroker.buffered``), while other
clients carry on. Limits are set small so that the tests stay short; the defaults are in
``BrokerLimits`` and docs/mqtt.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest

from edgemqtt.broker import BrokerLimits, EmbeddedBroker
from edgemqtt.client import Message, MqttClient
from tests.edgemqtt.raw import PUBLISH, Raw, connect_packet, encode_length, publish_packet, raw_client

TIMEOUT = 10.0  # a guard against hanging, never an assertion about speed
KiB = 1024

pytestmark = pytest.mark.usefixtures("no_errors_logged")


@contextlib.asynccontextmanager
async def limited(**limits: float) -> AsyncIterator[EmbeddedBroker]:
    broker = EmbeddedBroker("127.0.0.1", 0, limits=BrokerLimits(**limits))  # type: ignore[arg-type]
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def until(condition: object, what: str) -> None:
    """Wait for ``condition()`` to hold, checking at each turn of the loop's clock (bounded)."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def closed(client: Raw) -> None:
    """The broker closed ``client``'s connection: what it sent is read to EOF or a reset."""
    await client.closed_by_broker(timeout=TIMEOUT)
    assert client.reader.at_eof() or client.writer.transport.is_closing()
    client.close()


def unfinished_publish(size: int, sent: int) -> bytes:
    """The first ``sent`` bytes of a PUBLISH whose remaining length says ``size``."""
    header = bytes([PUBLISH << 4]) + encode_length(size) + b"\x00\x01t"
    return (header + b"x" * sent)[: len(header) + sent]


async def test_a_packet_over_the_maximum_is_refused_from_its_header(prefix: str) -> None:
    async with limited(max_packet=64 * KiB) as broker:
        async with raw_client(broker.address) as healthy:
            huge = await Raw.open(broker.address)
            await huge.connect(f"{prefix}-huge")
            huge.send(unfinished_publish(16 * 1024 * KiB, 10))  # says 16 MiB; the broker does not wait
            await closed(huge)
            await healthy.ping()
        await until(lambda: broker.buffered == 0 and broker.connections == 0, "all freed")


async def test_a_client_that_sends_no_connect_is_closed() -> None:
    async with limited(connect_timeout=0.3) as broker:
        silent = await Raw.open(broker.address)
        half = await Raw.open(broker.address)
        half.send(connect_packet("half")[:5])  # a CONNECT begun and never finished
        await closed(silent)
        await closed(half)
        await until(lambda: broker.buffered == 0 and broker.connections == 0, "all freed")


async def test_a_packet_trickled_byte_by_byte_is_cut_off(prefix: str) -> None:
    async with limited(packet_timeout=0.5) as broker:
        trickler = await Raw.open(broker.address)
        await trickler.connect(f"{prefix}-trickle", keepalive=60)
        data = publish_packet(f"{prefix}/t", b"x" * 1000)

        async def trickle() -> None:
            for byte in data:  # bounded: the whole packet would take 100 s at this pace
                trickler.send(bytes([byte]))
                await asyncio.sleep(0.1)

        task = asyncio.create_task(trickle())
        try:
            await closed(trickler)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        await until(lambda: broker.buffered == 0 and broker.connections == 0, "all freed")


@pytest.mark.parametrize("keepalive", [0, 3600])
async def test_keepalive_zero_or_too_long_gets_the_maximum(prefix: str, keepalive: int) -> None:
    wills: asyncio.Queue[Message] = asyncio.Queue()
    async with (
        limited(max_keepalive=2) as broker,
        MqttClient(broker.address, keepalive=1, on_message=wills.put_nowait) as watcher,  # pings
    ):
        await watcher.subscribe(f"{prefix}/will")
        idle = await Raw.open(broker.address)
        await idle.connect(f"{prefix}-idle", keepalive=keepalive, will=(f"{prefix}/will", b"idle", 0, False))
        await closed(idle)  # after 1.5 x 2 s of silence
        async with asyncio.timeout(TIMEOUT):
            assert (await wills.get()).payload == b"idle"
        assert watcher.connected


async def test_connections_past_the_cap_are_closed_at_once(prefix: str) -> None:
    async with limited(max_connections=2) as broker:
        async with raw_client(broker.address) as first, raw_client(broker.address):
            extra = await Raw.open(broker.address)
            await closed(extra)
            assert broker.connections == 2
            await first.ping()
        await until(lambda: broker.connections == 0, "both gone")
        async with raw_client(broker.address) as again:  # room again
            await again.ping()


async def slow_reader(broker: EmbeddedBroker, client_id: str, topic: str) -> Raw:
    """A subscriber that never reads, with a small socket receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KiB)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (broker.host, broker.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4 * KiB)
    client = Raw(reader, writer)
    await client.connect(client_id)
    await client.subscribe((topic, 0))
    return client


async def test_a_slow_reader_is_disconnected_for_real(prefix: str) -> None:
    async with limited(max_client_buffer=256 * KiB) as broker:
        readers = [await slow_reader(broker, f"{prefix}-slow{i}", f"{prefix}/flood") for i in range(3)]
        async with MqttClient(broker.address) as publisher:
            for _ in range(200):  # bounded: 200 x 64 KiB = 12.5 MiB per reader at most
                await publisher.publish_confirmed(f"{prefix}/flood", b"x" * 64 * KiB)
                assert broker.buffered <= 3 * (256 + 64) * KiB
                if broker.connections == 1:
                    break
            assert broker.connections == 1  # only the publisher is left
            await publisher.publish_confirmed(f"{prefix}/still-works", b"")
        for reader in readers:
            await closed(reader)  # the socket was aborted: EOF or reset after what the kernel held
        await until(lambda: broker.buffered == 0, "buffers freed")


async def test_unfinished_packets_of_many_clients_hit_the_total_cap(prefix: str) -> None:
    async with limited(max_packet=1024 * KiB, max_total_buffer=512 * KiB) as broker:
        holders = []
        for index in range(4):  # 4 x 200 KiB would pass 512 KiB
            holder = await Raw.open(broker.address)
            await holder.connect(f"{prefix}-holder{index}")
            holder.send(unfinished_publish(1000 * KiB, 200 * KiB))
            holders.append(holder)
        await until(lambda: broker.connections <= 2, "the clients over the cap dropped")
        assert broker.buffered <= 512 * KiB
        for holder in holders[2:]:
            await closed(holder)
        for holder in holders[:2]:
            holder.writer.transport.abort()
        await until(lambda: broker.buffered == 0 and broker.connections == 0, "all freed")


async def test_messages_for_an_absent_client_stop_at_its_buffer_cap(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with limited(max_client_buffer=100 * KiB) as broker:
        async with raw_client(broker.address, f"{prefix}-away", clean=False) as away:
            await away.subscribe((f"{prefix}/q", 1))
        async with MqttClient(broker.address) as publisher:
            for _ in range(20):  # 20 x 10 KiB: twice what may wait for it
                await publisher.publish_confirmed(f"{prefix}/q", b"x" * 10 * KiB)
        assert broker.buffered <= 100 * KiB
        assert sum("dropping its messages" in r.getMessage() for r in caplog.records) == 1
        async with raw_client(broker.address, f"{prefix}-away", clean=False) as back:
            kept = [await back.expect(PUBLISH) for _ in range(9)]
        assert all(len(message.payload) == 10 * KiB for message in kept)
