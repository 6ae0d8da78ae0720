"""The embedded MQTT 3.1.1 broker, for running edgetwin with nothing installed but Python.

Why our own: KubeEdge's topics start with ``$hw/``, and the pure-Python brokers on PyPI (amqtt)
refuse a PUBLISH to a ``$`` topic and drop the client, reading MQTT-4.7.2-1 more strictly than
mosquitto does. This broker follows mosquitto: clients may publish to ``$`` topics, and a filter
starting with a wildcard does not match them (so ``#`` never sees ``$hw/...``, ``$hw/#`` does).

What it does: MQTT 3.1.1 and 3.1 clients; QoS 0, 1 and 2 from clients (QoS 2 answered with the
full PUBREC/PUBREL/PUBCOMP flow and routed once, on PUBREL, as mosquitto does); delivery at QoS 0
or 1 (a QoS 2 subscription is granted QoS 1; overlapping subscriptions get one copy at the highest
QoS; at most 1,000 unacknowledged QoS 1 messages per client, the rest queued in order); retained
messages (sent once per matching filter of a SUBSCRIBE); last will (sent when a connection ends
without DISCONNECT: dropped, silent for one and a half keepalives, or closed for a protocol error);
session take-over (the old connection is closed, and its will sent unless both sessions are
persistent, as mosquitto does); persistent sessions (``clean_session=0``: subscriptions,
unacknowledged QoS 1 messages and up to 100,000 queued QoS 1 messages kept in memory while the
client is away; QoS 0 messages for an absent client are dropped, mosquitto's default). Publishes
to ``$SYS`` topics are accepted and dropped, as mosquitto does.

A client that breaks the protocol (malformed packet, first packet not CONNECT, no CONNECT within
10 s, PUBLISH to a wildcard topic, SUBSCRIBE to an invalid filter or at QoS 3, a server-only
packet…) is disconnected without affecting the others; a bad protocol level gets CONNACK 1 and an
empty client id with ``clean_session=0`` CONNACK 2. Stopping the broker closes every connection
and sends no wills.

What it does not do: MQTT 5, authentication (it is anonymous, like ``allow_anonymous true``: user
names and passwords are read and ignored), TLS, ACLs, WebSockets, bridges, ``$SYS`` statistics,
delivery at QoS 2, persistence to disk, packets over 16 MiB. It binds 127.0.0.1 unless told
otherwise. For several gateways, or any of the above, use mosquitto: the twin service speaks to
both the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from edgemqtt.client import BrokerAddress
from edgemqtt.errors import BrokerUnavailable, ProtocolViolation
from edgemqtt.wire import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    PacketBody,
    PacketReader,
    packet,
    publish_packet,
    topic_matches,
    valid_filter,
    valid_topic,
)

__all__ = ["EmbeddedBroker", "embedded_broker", "topic_matches"]

log = logging.getLogger(__name__)

_MAX_INFLIGHT = 1_000  # unacknowledged QoS 1 messages per client; the rest wait in the queue
_MAX_QUEUED = 100_000  # QoS 1 messages queued per client (away, or behind the inflight window)
_SLOW_CLIENT_BUFFER = 64 * 1024 * 1024
_CONNECT_TIMEOUT = 10.0

# (protocol name, level) pairs a 3.x broker speaks; any other level of these names gets CONNACK 1.
_PROTOCOLS = {"MQTT": 4, "MQIsdp": 3}

_Message = tuple[bytes, bytes, bool]  # topic, payload, retain
_Will = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


@dataclass(eq=False)
class _Session:
    client_id: str
    clean: bool
    subscriptions: dict[str, int] = field(default_factory=dict)
    writer: asyncio.StreamWriter | None = None
    will: _Will | None = None
    inflight: dict[int, _Message] = field(default_factory=dict)  # sent at QoS 1, awaiting PUBACK
    queued: deque[_Message] = field(default_factory=deque)  # QoS 1, not sent yet
    received: dict[int, tuple[str, bytes, bool]] = field(default_factory=dict)  # QoS 2 awaiting PUBREL
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self) -> int:
        # The inflight window (_MAX_INFLIGHT) is far below 65535, so a free id always exists.
        while True:
            packet_id = next(self.ids) % 65536
            if packet_id and packet_id not in self.inflight:
                return packet_id


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on ``host:port``; ``port=0`` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._routes: dict[str, list[tuple[_Session, int]]] = {}
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

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
            session.will = None  # the broker going away is not the client dying
        # Closing the sockets ends each connection's task at its next read. They are not cancelled:
        # Python 3.11's start_server logs a cancelled client task as an unhandled exception.
        for writer in self._connections.values():
            writer.close()
        if self._connections:
            _, stuck = await asyncio.wait(self._connections, timeout=5)
            for task in stuck:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -- connections ----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        peer = writer.get_extra_info("peername")
        session: _Session | None = None
        try:
            packets = PacketReader(reader)
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                # Checked on the first byte, as mosquitto does: garbage (an HTTP request) is refused
                # at once rather than read as the length of a packet that never ends.
                _, flags, body = await packets.packet(only=CONNECT)
            if flags:
                raise ProtocolViolation(f"CONNECT with flags {flags:#x}")
            connected = self._connect(PacketBody(body), writer)
            if connected is None:
                return
            session, keepalive = connected
            while True:
                timeout = keepalive * 1.5 if keepalive else None
                async with asyncio.timeout(timeout):
                    kind, flags, body = await packets.packet()
                if session.writer is not writer:
                    return  # taken over by a newer connection with the same client id
                if kind == DISCONNECT:
                    session.will = None
                    return
                self._dispatch(session, writer, kind, flags, PacketBody(body))
        except (asyncio.IncompleteReadError, OSError, TimeoutError):
            pass  # the client went away, or was silent past its keepalive
        except ProtocolViolation as exc:
            log.info("closing MQTT client %s: %s", peer, exc)
        except Exception:
            log.exception("closing MQTT client %s after an unexpected error", peer)
        finally:
            self._connections.pop(task, None)
            if session is not None and session.writer is writer:
                session.writer = None
                will, session.will = session.will, None
                if session.clean:
                    self._drop_session(session)
                if will is not None:
                    self._route(*will)
            writer.close()

    def _connect(self, body: PacketBody, writer: asyncio.StreamWriter) -> tuple[_Session, int] | None:
        protocol = body.text()
        level = body.u8()
        if protocol not in _PROTOCOLS:
            raise ProtocolViolation(f"unknown protocol {protocol[:20]!r}")
        if level != _PROTOCOLS[protocol]:
            writer.write(packet(CONNACK, 0, b"\x00\x01"))  # unacceptable protocol version
            return None
        flags = body.u8()
        keepalive = body.u16()
        if flags & 0x01:
            raise ProtocolViolation("reserved CONNECT flag set")  # MQTT-3.1.2-3
        client_id = body.text()
        clean = bool(flags & 0x02)
        will: _Will | None = None
        will_qos = (flags >> 3) & 0x03
        if flags & 0x04:
            will_topic = body.text()
            will_payload = body.raw()
            if will_qos == 3 or not valid_topic(will_topic):
                raise ProtocolViolation(f"invalid will (QoS {will_qos}, topic {will_topic[:80]!r})")
            will = (will_topic, will_payload, will_qos, bool(flags & 0x20))
        elif flags & 0x38:
            raise ProtocolViolation("will QoS or retain set without a will")  # MQTT-3.1.2-11
        if flags & 0x40 and not flags & 0x80:
            raise ProtocolViolation("password without a user name")  # MQTT-3.1.2-22
        if flags & 0x80:
            body.text()  # user name: the embedded broker is anonymous, like `allow_anonymous true`
        if flags & 0x40:
            body.raw()
        if not client_id:
            if not clean or level == 3:  # MQTT 3.1 requires an id; 3.1.1 only for persistent sessions
                writer.write(packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
                return None
            client_id = f"auto-{uuid.uuid4()}"
        existing = self._sessions.get(client_id)
        if existing is not None and existing.writer is not None:
            log.info("MQTT client %s connected again; closing its old connection", client_id)
            existing.writer.close()  # session take-over
            existing.writer = None
            old_will, existing.will = existing.will, None
            if old_will is not None and (existing.clean or clean):
                self._route(*old_will)  # as mosquitto: no will if the persistent session carries on
        present = existing is not None and not clean and not existing.clean
        if existing is not None and not present:
            self._drop_session(existing)
            existing = None
        session = existing or _Session(client_id, clean)
        session.writer = writer
        session.will = will
        self._sessions[client_id] = session
        writer.write(packet(CONNACK, 0, bytes([1 if present else 0, 0])))
        for packet_id, (topic, payload, retain) in session.inflight.items():
            writer.write(publish_packet(topic, payload, 1, packet_id, retain, dup=True))
        self._drain(session)
        return session, keepalive

    def _drop_session(self, session: _Session) -> None:
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
        if session.subscriptions:
            self._routes.clear()

    # -- packets --------------------------------------------------------------------------------

    def _dispatch(
        self, session: _Session, writer: asyncio.StreamWriter, kind: int, flags: int, body: PacketBody
    ) -> None:
        if kind == PUBLISH:
            self._publish(session, writer, flags, body)
            return
        if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE):
            if flags != 0x02:
                raise ProtocolViolation(f"packet type {kind} with flags {flags:#x}")  # MQTT-3.6.1-1 …
        elif kind not in (PUBACK, PUBREC, PUBCOMP, PINGREQ):
            raise ProtocolViolation(f"unexpected packet type {kind}")
        if kind == PUBACK:
            if session.inflight.pop(body.u16(), None) is not None:
                self._drain(session)
        elif kind == PUBREL:
            packet_id = body.u16()
            message = session.received.pop(packet_id, None)
            if message is not None:
                self._route(message[0], message[1], 2, message[2])
            writer.write(packet(PUBCOMP, 0, struct.pack("!H", packet_id)))
        elif kind == PUBREC:
            # We never send QoS 2, so there is nothing to release; answer as the flow requires.
            writer.write(packet(PUBREL, 0x02, struct.pack("!H", body.u16())))
        elif kind == SUBSCRIBE:
            self._subscribe(session, writer, body)
        elif kind == UNSUBSCRIBE:
            packet_id = body.packet_id()
            if body.done:
                raise ProtocolViolation("UNSUBSCRIBE with no topic filter")  # MQTT-3.10.3-2
            while not body.done:
                session.subscriptions.pop(body.text(), None)
            self._routes.clear()
            writer.write(packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PINGREQ:
            writer.write(packet(PINGRESP, 0, b""))
        # PUBCOMP: we never send PUBREL but for a client's stray PUBREC; nothing to do.

    def _publish(self, session: _Session, writer: asyncio.StreamWriter, flags: int, body: PacketBody) -> None:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise ProtocolViolation("PUBLISH with QoS 3")  # MQTT-3.3.1-4
        topic = body.text()
        if not valid_topic(topic):
            raise ProtocolViolation(f"PUBLISH to invalid topic {topic[:80]!r}")  # MQTT-3.3.2-2
        packet_id = body.packet_id() if qos else 0
        retain = bool(flags & 0x01)
        if topic == "$SYS" or topic.startswith("$SYS/"):
            pass  # the broker's own namespace: accepted and dropped, as mosquitto does
        elif qos == 2:
            # Stored until PUBREL, then routed once however often the client resends the PUBLISH.
            session.received.setdefault(packet_id, (topic, body.rest(), retain))
        else:
            self._route(topic, body.rest(), qos, retain)
        if qos == 1:
            writer.write(packet(PUBACK, 0, struct.pack("!H", packet_id)))
        elif qos == 2:
            writer.write(packet(PUBREC, 0, struct.pack("!H", packet_id)))

    def _subscribe(self, session: _Session, writer: asyncio.StreamWriter, body: PacketBody) -> None:
        packet_id = body.packet_id()
        granted = bytearray()
        new_filters = []
        while not body.done:
            topic_filter = body.text()
            requested = body.u8()
            # mosquitto disconnects for these too, though 3.1.1 would allow a 0x80 return code.
            if requested > 2:
                raise ProtocolViolation(f"SUBSCRIBE with options {requested:#x}")  # MQTT-3.8.3-4
            if not valid_filter(topic_filter):
                raise ProtocolViolation(f"SUBSCRIBE to invalid filter {topic_filter[:80]!r}")
            qos = min(requested, 1)
            session.subscriptions[topic_filter] = qos
            granted.append(qos)
            new_filters.append((topic_filter, qos))
        if not granted:
            raise ProtocolViolation("SUBSCRIBE with no topic filter")  # MQTT-3.8.3-3
        self._routes.clear()
        writer.write(packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted)))
        # Retained messages go out once per matching filter of this SUBSCRIBE, as with mosquitto.
        for topic_filter, qos in new_filters:
            for topic, (payload, retained_qos) in self._retained.items():
                if topic_matches(topic_filter, topic):
                    self._send(session, topic.encode(), payload, True, qos=min(qos, retained_qos))

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
        if qos == 0:
            if session.writer is not None:
                self._write(session, session.writer, publish_packet(topic, payload, 0, 0, retain, False))
            return
        if len(session.queued) >= _MAX_QUEUED:
            log.warning("queue of MQTT client %s is full; dropping a message", session.client_id)
            return
        session.queued.append((topic, payload, retain))
        self._drain(session)

    def _drain(self, session: _Session) -> None:
        """Send queued QoS 1 messages, in order, while the client is here and the window allows."""
        writer = session.writer
        while writer is not None and session.queued and len(session.inflight) < _MAX_INFLIGHT:
            topic, payload, retain = message = session.queued.popleft()
            packet_id = session.next_id()
            session.inflight[packet_id] = message
            self._write(session, writer, publish_packet(topic, payload, 1, packet_id, retain, False))

    def _write(self, session: _Session, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.transport.get_write_buffer_size() > _SLOW_CLIENT_BUFFER:
            if not writer.is_closing():
                log.warning("MQTT client %s reads too slowly; disconnecting it", session.client_id)
                writer.close()
            return
        writer.write(data)


@contextlib.asynccontextmanager
async def embedded_broker(host: str = "127.0.0.1", port: int = 1883) -> AsyncIterator[BrokerAddress]:
    """Run the embedded broker for the duration of the block; ``port=0`` picks a free port."""
    broker = EmbeddedBroker(host, port)
    await broker.start()
    try:
        yield broker.address
    finally:
        await broker.stop()
