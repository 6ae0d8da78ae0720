"""The embedded MQTT 3.1.1 broker, for running edgetwin with nothing installed but Python.

Why our own: KubeEdge's topics start with ``$hw/``, and the pure-Python brokers on PyPI (amqtt)
refuse a PUBLISH to a ``$`` topic and drop the client, reading MQTT-4.7.2-1 more strictly than
mosquitto does. This broker follows mosquitto: clients may publish to ``$`` topics, and a filter
starting with a wildcard does not match them (so ``#`` never sees ``$hw/...``, ``$hw/#`` does).

What it does: QoS 0, 1 and 2 from clients (QoS 2 answered with the full PUBREC/PUBREL/PUBCOMP
flow), delivery at QoS 0 or 1 (a QoS 2 subscription is granted QoS 1), retained messages, last
will, keepalive, session take-over, and persistent sessions (``clean_session=0``: subscriptions and
undelivered QoS 1 messages kept in memory while the client is away). It binds 127.0.0.1 unless told
otherwise. It keeps nothing on disk: for several gateways, TLS or ACLs, use mosquitto; the twin
service speaks to both the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from twin.errors import BrokerUnavailable
from twin.mqtt import BrokerAddress

__all__ = ["EmbeddedBroker", "embedded_broker", "topic_matches"]

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

_MAX_PACKET = 16 * 1024 * 1024
_MAX_QUEUED = 100_000  # undelivered QoS 1 messages kept per absent persistent session
_SLOW_CLIENT_BUFFER = 64 * 1024 * 1024


class ProtocolViolation(Exception):
    """The client broke MQTT 3.1.1; the connection is closed."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching, with mosquitto's rule for ``$`` topics."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def _valid_filter(topic_filter: str) -> bool:
    if not topic_filter or "\x00" in topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def _encode_length(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _packet(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([(kind << 4) | flags]) + _encode_length(len(body)) + body


def _publish_packet(topic: bytes, payload: bytes, qos: int, packet_id: int, retain: bool, dup: bool) -> bytes:
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return _packet(PUBLISH, flags, body)


@dataclass(eq=False)
class _Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    writer: asyncio.StreamWriter | None = None
    inflight: dict[int, tuple[bytes, bytes, bool]] = field(default_factory=dict)
    queued: deque[tuple[bytes, bytes, bool]] = field(default_factory=deque)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        while True:
            packet_id = next(self.ids) % 65536
            if packet_id and packet_id not in self.inflight:
                return packet_id


class _Reader:
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def packet(self) -> tuple[int, int, bytes]:
        first = await self._reader.readexactly(1)
        length, multiplier = 0, 1
        for _ in range(4):
            byte = (await self._reader.readexactly(1))[0]
            length += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                break
            multiplier *= 128
        else:
            raise ProtocolViolation("malformed remaining length")
        if length > _MAX_PACKET:
            raise ProtocolViolation(f"packet of {length} bytes exceeds {_MAX_PACKET}")
        body = await self._reader.readexactly(length) if length else b""
        return first[0] >> 4, first[0] & 0x0F, body


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            raise ProtocolViolation("packet too short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self) -> int:
        if self.pos + 2 > len(self.data):
            raise ProtocolViolation("packet too short")
        (value,) = struct.unpack_from("!H", self.data, self.pos)
        self.pos += 2
        return int(value)

    def raw(self) -> bytes:
        length = self.u16()
        if self.pos + length > len(self.data):
            raise ProtocolViolation("string runs past the packet")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def text(self) -> str:
        try:
            return self.raw().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolViolation("string is not UTF-8") from exc

    def rest(self) -> bytes:
        return self.data[self.pos :]

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on ``host:port``; ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._routes: dict[str, list[tuple[_Session, int]]] = {}
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, reuse_address=True)
        except OSError as exc:
            raise BrokerUnavailable(
                f"embedded broker cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on mqtt://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in self._sessions.values():
            if session.writer is not None:
                session.writer.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- connections ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        session: _Session | None = None
        will: tuple[str, bytes, int, bool] | None = None
        try:
            packets = _Reader(reader)
            async with asyncio.timeout(10):
                kind, _, body = await packets.packet()
            if kind != CONNECT:
                raise ProtocolViolation("first packet is not CONNECT")
            session, will, keepalive = self._connect(_Body(body), writer)
            if session is None:
                return
            while True:
                timeout = keepalive * 1.5 if keepalive else None
                async with asyncio.timeout(timeout):
                    kind, flags, body = await packets.packet()
                if kind == DISCONNECT:
                    will = None
                    return
                self._dispatch(session, kind, flags, _Body(body))
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except ProtocolViolation as exc:
            log.info("closing MQTT client %s: %s", peer, exc)
        finally:
            self._connections.discard(task)
            if session is not None and session.writer is writer:
                session.writer = None
                if session.clean:
                    self._drop_session(session)
                if will is not None:
                    self._route(will[0], will[1], will[2], will[3])
            writer.close()

    def _connect(
        self, body: _Body, writer: asyncio.StreamWriter
    ) -> tuple[_Session | None, tuple[str, bytes, int, bool] | None, int]:
        protocol = body.text()
        level = body.u8()
        if protocol not in ("MQTT", "MQIsdp") or level not in (3, 4):
            writer.write(_packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            return None, None, 0
        flags = body.u8()
        keepalive = body.u16()
        client_id = body.text()
        clean = bool(flags & 0x02)
        will = None
        if flags & 0x04:
            will_topic = body.text()
            will = (will_topic, body.raw(), (flags >> 3) & 0x03, bool(flags & 0x20))
        if flags & 0x80:
            body.text()  # user name: the embedded broker is anonymous, like `allow_anonymous true`
        if flags & 0x40:
            body.raw()
        if not client_id:
            if not clean:
                writer.write(_packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
                return None, None, 0
            client_id = f"anonymous-{id(writer):x}"
        existing = self._sessions.get(client_id)
        if existing is not None and existing.writer is not None:
            existing.writer.close()  # session take-over
            existing.writer = None
        present = existing is not None and not clean
        if existing is not None and (clean or existing.clean):
            self._drop_session(existing)
            existing = None
        session = existing or _Session(client_id, clean)
        session.clean = clean
        session.writer = writer
        self._sessions[client_id] = session
        writer.write(_packet(CONNACK, 0, bytes([1 if present else 0, 0])))
        for packet_id, (topic, payload, retain) in session.inflight.items():
            writer.write(_publish_packet(topic, payload, 1, packet_id, retain, dup=True))
        while session.queued:
            self._send(session, *session.queued.popleft(), qos=1)
        return session, will, keepalive

    def _drop_session(self, session: _Session) -> None:
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
        if session.subscriptions:
            self._routes.clear()

    # -- packets --------------------------------------------------------------------------------

    def _dispatch(self, session: _Session, kind: int, flags: int, body: _Body) -> None:
        writer = session.writer
        assert writer is not None
        if kind == PUBLISH:
            qos = (flags >> 1) & 0x03
            if qos == 3:
                raise ProtocolViolation("PUBLISH with QoS 3")
            topic = body.text()
            if not topic or "+" in topic or "#" in topic:
                raise ProtocolViolation(f"PUBLISH to invalid topic {topic[:80]!r}")
            packet_id = body.u16() if qos else 0
            self._route(topic, body.rest(), qos, bool(flags & 0x01))
            if qos == 1:
                writer.write(_packet(PUBACK, 0, struct.pack("!H", packet_id)))
            elif qos == 2:
                writer.write(_packet(PUBREC, 0, struct.pack("!H", packet_id)))
        elif kind == PUBACK:
            session.inflight.pop(body.u16(), None)
        elif kind == PUBREL:
            writer.write(_packet(PUBCOMP, 0, struct.pack("!H", body.u16())))
        elif kind in (PUBREC, PUBCOMP):
            session.inflight.pop(body.u16(), None)
        elif kind == SUBSCRIBE:
            self._subscribe(session, body)
        elif kind == UNSUBSCRIBE:
            packet_id = body.u16()
            while not body.done:
                session.subscriptions.pop(body.text(), None)
            self._routes.clear()
            writer.write(_packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PINGREQ:
            writer.write(_packet(PINGRESP, 0, b""))
        else:
            raise ProtocolViolation(f"unexpected packet type {kind}")

    def _subscribe(self, session: _Session, body: _Body) -> None:
        assert session.writer is not None
        packet_id = body.u16()
        granted = bytearray()
        new_filters = []
        while not body.done:
            topic_filter = body.text()
            requested = body.u8() & 0x03
            if not _valid_filter(topic_filter) or requested == 3:
                granted.append(0x80)
                continue
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            granted.append(qos)
            new_filters.append((topic_filter, qos))
        if not granted:
            raise ProtocolViolation("SUBSCRIBE with no topic filter")
        self._routes.clear()
        session.writer.write(_packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted)))
        for topic, (payload, retained_qos) in self._retained.items():
            for topic_filter, qos in new_filters:
                if topic_matches(topic_filter, topic):
                    self._send(session, topic.encode(), payload, True, qos=min(qos, retained_qos))
                    break

    # -- routing --------------------------------------------------------------------------------

    def _route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self._retained[topic] = (payload, qos)
            else:
                self._retained.pop(topic, None)
        targets = self._routes.get(topic)
        if targets is None:
            targets = []
            for session in self._sessions.values():
                best = -1
                for topic_filter, sub_qos in session.subscriptions.items():
                    if sub_qos > best and topic_matches(topic_filter, topic):
                        best = sub_qos
                if best >= 0:
                    targets.append((session, best))
            if len(self._routes) > 50_000:
                self._routes.clear()
            self._routes[topic] = targets
        raw_topic = topic.encode()
        for session, sub_qos in targets:
            self._send(session, raw_topic, payload, False, qos=min(qos, sub_qos))

    def _send(self, session: _Session, topic: bytes, payload: bytes, retain: bool, *, qos: int) -> None:
        writer = session.writer
        if writer is None:
            if qos and len(session.queued) < _MAX_QUEUED:
                session.queued.append((topic, payload, retain))
            return
        if writer.transport.get_write_buffer_size() > _SLOW_CLIENT_BUFFER:
            log.warning("MQTT client %s reads too slowly; disconnecting it", session.client_id)
            writer.close()
            return
        packet_id = 0
        if qos:
            packet_id = session.next_id()
            session.inflight[packet_id] = (topic, payload, retain)
        writer.write(_publish_packet(topic, payload, qos, packet_id, retain, dup=False))


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> AsyncIterator[BrokerAddress]:
    """Run the embedded broker for the duration of the block; ``port=0`` picks a free port."""
    broker = EmbeddedBroker(host, port)
    await broker.start()
    try:
        yield broker.address
    finally:
        await broker.stop()
