"""A raw MQTT 3.1.1 client for broker tests: every byte in and out is the test's to choose."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edgemqtt.address import BrokerAddress

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

TIMEOUT = 5.0  # a guard against hanging, never an assertion about speed

Will = tuple[str, bytes, int, bool]


def encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def packet(kind: int, flags: int, body: bytes = b"") -> bytes:
    return bytes([(kind << 4) | flags]) + encode_length(len(body)) + body


def connect_packet(
    client_id: str,
    *,
    clean: bool = True,
    keepalive: int = 0,
    will: Will | None = None,
    protocol: str = "MQTT",
    level: int = 4,
    username: str | None = None,
    password: bytes | None = None,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += string(topic) + string(message)
    if username is not None:
        flags |= 0x80
        payload += string(username)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    header = string(protocol) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, header + payload)


def publish_packet(
    topic: str | bytes,
    payload: bytes,
    *,
    qos: int = 0,
    packet_id: int = 0,
    retain: bool = False,
    dup: bool = False,
) -> bytes:
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    return packet(PUBLISH, flags, string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload)


def subscribe_packet(packet_id: int, *filters: tuple[str, int], flags: int = 0x02) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(string(f) + bytes([qos]) for f, qos in filters)
    return packet(SUBSCRIBE, flags, body)


def ack(kind: int, packet_id: int) -> bytes:
    return packet(kind, 0x02 if kind == PUBREL else 0, struct.pack("!H", packet_id))


@dataclass(frozen=True)
class Packet:
    kind: int
    flags: int
    body: bytes

    @property
    def qos(self) -> int:
        return (self.flags >> 1) & 0x03

    @property
    def retain(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def dup(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def topic(self) -> str:
        (length,) = struct.unpack_from("!H", self.body)
        return self.body[2 : 2 + length].decode()

    @property
    def packet_id(self) -> int:
        if self.kind != PUBLISH:
            return int(struct.unpack_from("!H", self.body)[0])
        offset = 2 + len(self.topic.encode())
        return int(struct.unpack_from("!H", self.body, offset)[0]) if self.qos else 0

    @property
    def payload(self) -> bytes:
        offset = 2 + len(self.topic.encode()) + (2 if self.qos else 0)
        return self.body[offset:]


class Raw:
    """One TCP connection speaking MQTT by hand: every byte in and out is the test's to choose."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._ids = iter(range(1, 65536))

    @classmethod
    async def open(cls, address: BrokerAddress) -> Raw:
        reader, writer = await asyncio.open_connection(address.host, address.port)
        return cls(reader, writer)

    def next_id(self) -> int:
        return next(self._ids)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self, timeout: float = TIMEOUT) -> Packet:
        async with asyncio.timeout(timeout):
            first = await self.reader.readexactly(1)
            length, multiplier = 0, 1
            while True:
                byte = (await self.reader.readexactly(1))[0]
                length += (byte & 0x7F) * multiplier
                multiplier *= 128
                if not byte & 0x80:
                    break
            body = await self.reader.readexactly(length)
        return Packet(first[0] >> 4, first[0] & 0x0F, body)

    async def expect(self, kind: int) -> Packet:
        received = await self.read()
        assert received.kind == kind, received
        return received

    async def closed_by_broker(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Wait until the broker closes the connection; returns what it sent before."""
        received = []
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                received.append(await self.read(timeout))
        return received

    async def connect(self, client_id: str, **options: object) -> bool:
        """CONNECT, assert it is accepted, and return the session-present flag."""
        self.send(connect_packet(client_id, **options))  # type: ignore[arg-type]
        connack = await self.expect(CONNACK)
        assert connack.body[1] == 0, f"CONNACK return code {connack.body[1]}"
        return bool(connack.body[0] & 0x01)

    async def subscribe(self, *filters: tuple[str, int]) -> list[int]:
        """SUBSCRIBE and return the granted QoS of each filter."""
        packet_id = self.next_id()
        self.send(subscribe_packet(packet_id, *filters))
        suback = await self.expect(SUBACK)
        assert suback.packet_id == packet_id
        return list(suback.body[2:])

    async def unsubscribe(self, *filters: str) -> None:
        packet_id = self.next_id()
        self.send(packet(UNSUBSCRIBE, 0x02, struct.pack("!H", packet_id) + b"".join(map(string, filters))))
        assert (await self.expect(UNSUBACK)).packet_id == packet_id

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Publish and, at QoS 1 and 2, finish the acknowledgement flow."""
        packet_id = self.next_id() if qos else 0
        self.send(publish_packet(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
        if qos == 1:
            assert (await self.expect(PUBACK)).packet_id == packet_id
        elif qos == 2:
            assert (await self.expect(PUBREC)).packet_id == packet_id
            self.send(ack(PUBREL, packet_id))
            assert (await self.expect(PUBCOMP)).packet_id == packet_id

    async def ping(self) -> None:
        self.send(packet(PINGREQ, 0))
        await self.expect(PINGRESP)

    async def until(self, topic: str) -> list[Packet]:
        """Messages received before the first one on ``topic`` (QoS 1 ones acknowledged)."""
        received: list[Packet] = []
        while True:
            message = await self.expect(PUBLISH)
            if message.qos == 1:
                self.send(ack(PUBACK, message.packet_id))
            if message.topic == topic:
                return received
            received.append(message)

    async def disconnect(self) -> None:
        self.send(packet(DISCONNECT, 0))
        await self.closed_by_broker()
        self.close()

    def close(self) -> None:
        self.writer.close()


@contextlib.asynccontextmanager
async def raw_client(address: BrokerAddress, client_id: str = "", **options: object) -> AsyncIterator[Raw]:
    client = await Raw.open(address)
    try:
        await client.connect(client_id or f"raw-{uuid.uuid4().hex[:10]}", **options)
        yield client
    finally:
        client.close()
