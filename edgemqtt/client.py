"""A small asyncio MQTT 3.1.1 client, shared by every edgetwin component.

Why not paho-mqtt: its network loop is a thread or a blocking call, it leaves Nagle's algorithm on
(~40 ms per request/response hop on loopback, DESIGN.md §11), and its per-packet cost (MQTT 5
property objects and a threading.Condition for every message, even on MQTT 3.1.1) was ~60 % of the
twin service's CPU under load. This client is an ``asyncio.Protocol`` over the packet format in
``edgemqtt.wire``, which the embedded broker uses too:

* QoS 0 and 1 publishing (``publish`` never blocks; ``publish_confirmed`` waits for the PUBACK),
  QoS 0, 1 and 2 receiving, subscriptions, keepalive pings, user name and password;
* asyncio's TCP transports set ``TCP_NODELAY``;
* a lost broker is reconnected with backoff; subscriptions are restored, and QoS 1 messages not
  yet acknowledged (or published while away, up to ``max_queued``) are sent again, so a service
  survives a broker restart without losing what it published at QoS 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urlsplit

from edgemqtt.errors import BrokerUnavailable
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
    encode_string,
    packet,
    publish_packet,
)

__all__ = ["BrokerAddress", "Message", "MessageHandler", "MqttClient", "SocketOptions"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)

_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens: parsed from ``mqtt://[user:password@]host[:port]``."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        if "://" not in url:
            url = f"mqtt://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} (use mqtt://HOST:PORT)")
        try:
            port = parts.port or 1883
        except ValueError as exc:
            raise ValueError(f"bad port in broker URL {url!r}") from exc
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            username=parts.username,
            password=parts.password,
        )

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


MessageHandler = Callable[[Message], None]


class SocketOptions(Protocol):
    def getsockopt(self, level: int, option: int, /) -> int: ...


class _Framing(asyncio.Protocol):
    """Cuts the byte stream into MQTT packets for the client."""

    def __init__(self, client: MqttClient) -> None:
        self._client = client
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            length, multiplier, index = 0, 1, pos + 1
            while True:
                if index >= size:
                    break
                byte = buffer[index]
                index += 1
                length += (byte & 0x7F) * multiplier
                if not byte & 0x80:
                    break
                multiplier *= 128
                if multiplier > 128**3:
                    self._violation("malformed remaining length")
                    return
            else:  # pragma: no cover - the loop always breaks
                break
            if (buffer[index - 1] & 0x80) or size - index < length:
                break  # the length or the body is not all here yet
            first = buffer[pos]
            body = bytes(buffer[index : index + length])
            pos = index + length
            try:
                self._client._on_packet(first >> 4, first & 0x0F, body)
            except (struct.error, IndexError, UnicodeDecodeError):
                self._violation(f"malformed packet of type {first >> 4}")
                return
        if pos:
            del buffer[:pos]

    def _violation(self, what: str) -> None:
        log.warning("MQTT broker at %s sent a %s; reconnecting", self._client.address.url, what)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._client._on_lost(self, exc)


class MqttClient:
    """An MQTT 3.1.1 connection driven by the running asyncio loop.

    Use as ``async with MqttClient(address, on_message=handler) as client``. ``handler`` is called
    in the loop for every message, in arrival order; it must not block (put work on a queue).
    """

    def __init__(
        self,
        address: BrokerAddress | str,
        *,
        client_id: str | None = None,
        on_message: MessageHandler | None = None,
        keepalive: int = 30,
        reconnect_delays: Iterable[float] = (0.1, 0.5, 1.0, 2.0, 5.0),
        clean_session: bool = True,
        max_queued: int = 100_000,
    ) -> None:
        self.address = BrokerAddress.parse(address) if isinstance(address, str) else address
        self.client_id = client_id or f"edgetwin-{os.getpid()}-{next(_ids)}"
        self._on_message = on_message
        self._keepalive = keepalive
        self._delays = tuple(reconnect_delays) or (1.0,)
        self._clean_session = clean_session
        self._max_queued = max_queued
        self._loop: asyncio.AbstractEventLoop | None = None
        self._framing: _Framing | None = None
        self._connected = asyncio.Event()
        self._connack: asyncio.Future[bool] | None = None
        self._subscriptions: dict[str, int] = {}
        self._pending: dict[int, asyncio.Future[None]] = {}  # SUBACK, UNSUBACK, PUBACK awaited
        self._inflight: dict[int, tuple[bytes, bytes, bool, bool]] = {}  # QoS 1: topic, payload, retain, sent
        self._qos2_received: set[int] = set()
        self._packet_ids = itertools.count(1)
        self._pong = True
        self._keepalive_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def socket(self) -> SocketOptions | None:
        """The connection's socket while connected, to read its options (diagnostics, tests)."""
        if self._framing is None or self._framing.transport is None:
            return None
        sock: SocketOptions | None = self._framing.transport.get_extra_info("socket")
        return sock

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect and wait for the broker's CONNACK; ``BrokerUnavailable`` if it does not come."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        try:
            async with asyncio.timeout(timeout):
                await self._connect_once()
        except (OSError, TimeoutError) as exc:
            self._drop()
            raise BrokerUnavailable(f"cannot connect to MQTT broker at {self.address.url}: {exc}") from exc
        except BrokerUnavailable:
            self._drop()
            raise

    async def _connect_once(self) -> None:
        assert self._loop is not None
        _, framing = await self._loop.create_connection(
            lambda: _Framing(self), self.address.host, self.address.port
        )
        self._framing = framing
        self._connack = self._loop.create_future()
        assert framing.transport is not None
        framing.transport.write(self._connect_packet())
        await self._connack
        self._connected.set()
        self._pong = True
        self._keepalive_task = self._loop.create_task(
            self._keepalive_loop(framing), name=f"mqtt keepalive {self.client_id}"
        )
        if self._subscriptions:
            self._send_subscribe(list(self._subscriptions.items()))
        for packet_id, (topic, payload, retain, sent) in list(self._inflight.items()):
            self._write(publish_packet(topic, payload, 1, packet_id, retain, dup=sent))
            self._inflight[packet_id] = (topic, payload, retain, True)

    def _connect_packet(self) -> bytes:
        flags = 0x02 if self._clean_session else 0
        payload = encode_string(self.client_id.encode())
        if self.address.username is not None:
            flags |= 0x80
            payload += encode_string(self.address.username.encode())
            if self.address.password is not None:
                flags |= 0x40
                payload += encode_string(self.address.password.encode())
        header = encode_string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", self._keepalive)
        return packet(CONNECT, 0, header + payload)

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        framing = self._framing
        if framing is not None and framing.transport is not None:
            if self.connected:
                framing.transport.write(packet(DISCONNECT, 0, b""))
            framing.transport.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await framing.closed
        self._drop()
        self._fail_pending(BrokerUnavailable("client closed"))

    def _drop(self) -> None:
        self._connected.clear()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        if self._framing is not None and self._framing.transport is not None:
            self._framing.transport.abort()
        self._framing = None

    def _fail_pending(self, error: BrokerUnavailable) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: nobody may be waiting any more
        self._pending.clear()

    # -- API ---------------------------------------------------------------------------------------

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        """Subscribe and wait for SUBACK; subscriptions are restored after a reconnect."""
        if qos not in (0, 1, 2):
            raise ValueError(f"QoS {qos} is not 0, 1 or 2")
        for topic in topics:
            self._subscriptions[topic] = qos
        if not topics or not self.connected:
            return
        await self._wait(self._send_subscribe([(t, qos) for t in topics]))

    def _send_subscribe(self, topics: list[tuple[str, int]]) -> int:
        packet_id = self._next_id()
        body = struct.pack("!H", packet_id)
        for topic, qos in topics:
            body += encode_string(topic.encode()) + bytes([qos])
        self._write(packet(SUBSCRIBE, 0x02, body))
        return packet_id

    async def unsubscribe(self, *topics: str) -> None:
        for topic in topics:
            self._subscriptions.pop(topic, None)
        if not topics or not self.connected:
            return
        packet_id = self._next_id()
        body = struct.pack("!H", packet_id) + b"".join(encode_string(t.encode()) for t in topics)
        self._write(packet(UNSUBSCRIBE, 0x02, body))
        await self._wait(packet_id)

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False) -> None:
        """Send a message without waiting. QoS 0 while disconnected is dropped; QoS 1 is kept."""
        self._publish(topic, payload, qos, retain)

    def _publish(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> int:
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"cannot publish to {topic!r}: a topic name has no wildcards and is not empty")
        if qos not in (0, 1):
            raise ValueError(f"publishing at QoS {qos} is not supported (use 0 or 1)")
        raw_topic = topic.encode()
        data = payload.encode() if isinstance(payload, str) else payload
        if qos == 0:
            if self.connected:
                self._write(publish_packet(raw_topic, data, 0, 0, retain, dup=False))
            return 0
        if len(self._inflight) >= self._max_queued:
            raise BrokerUnavailable(
                f"{len(self._inflight)} messages to {self.address.url} are waiting already; "
                "the broker is unreachable or too slow"
            )
        packet_id = self._next_id()
        sent = self.connected
        self._inflight[packet_id] = (raw_topic, data, retain, sent)
        if sent:
            self._write(publish_packet(raw_topic, data, 1, packet_id, retain, dup=False))
        return packet_id

    async def publish_confirmed(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        if not self.connected:
            raise BrokerUnavailable(f"not connected to {self.address.url}")
        await self._wait(self._publish(topic, payload, 1, retain))

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def _next_id(self) -> int:
        while True:
            packet_id = next(self._packet_ids) % 65536
            if packet_id and packet_id not in self._inflight and packet_id not in self._pending:
                return packet_id

    async def _wait(self, packet_id: int) -> None:
        assert self._loop is not None
        future = self._pending.setdefault(packet_id, self._loop.create_future())
        try:
            await future
        finally:
            self._pending.pop(packet_id, None)

    def _write(self, data: bytes) -> None:
        framing = self._framing
        if framing is not None and framing.transport is not None:
            framing.transport.write(data)

    def _resolve(self, packet_id: int, error: BrokerUnavailable | None = None) -> None:
        future = self._pending.get(packet_id)
        if future is not None and not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    # -- incoming --------------------------------------------------------------------------------

    def _on_packet(self, kind: int, flags: int, body: bytes) -> None:
        if kind == PUBLISH:
            qos = (flags >> 1) & 0x03
            (topic_length,) = struct.unpack_from("!H", body, 0)
            topic = body[2 : 2 + topic_length].decode()
            pos = 2 + topic_length
            packet_id = 0
            if qos:
                (packet_id,) = struct.unpack_from("!H", body, pos)
                pos += 2
            if qos == 1:
                self._write(packet(PUBACK, 0, struct.pack("!H", packet_id)))
            elif qos == 2:
                self._write(packet(PUBREC, 0, struct.pack("!H", packet_id)))
                if packet_id in self._qos2_received:
                    return  # a resent QoS 2 message already delivered
                self._qos2_received.add(packet_id)
            self._deliver(Message(topic, body[pos:]))
        elif kind == PUBACK:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._inflight.pop(packet_id, None)
            self._resolve(packet_id)
        elif kind == PUBREL:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._qos2_received.discard(packet_id)
            self._write(packet(PUBCOMP, 0, body[:2]))
        elif kind == SUBACK:
            (packet_id,) = struct.unpack("!H", body[:2])
            refused = 0x80 in body[2:]
            error = (
                BrokerUnavailable(f"the broker at {self.address.url} refused a subscription")
                if refused
                else None
            )
            self._resolve(packet_id, error)
        elif kind == UNSUBACK:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._resolve(packet_id)
        elif kind == PINGRESP:
            self._pong = True
        elif kind == CONNACK:
            future = self._connack
            if future is not None and not future.done():
                code = body[1]
                if code:
                    reason = _CONNACK_REASONS.get(code, f"code {code}")
                    future.set_exception(
                        BrokerUnavailable(
                            f"the broker at {self.address.url} refused the connection: {reason}"
                        )
                    )
                else:
                    future.set_result(bool(body[0] & 0x01))

    def _deliver(self, message: Message) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(message)
        except Exception:
            # A handler bug must not take the connection down with it.
            log.exception("message handler failed for %s", message.topic)

    def _on_lost(self, framing: _Framing, exc: Exception | None) -> None:
        if framing is not self._framing:
            return  # an older connection, already replaced
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        self._framing = None
        connack = self._connack
        if connack is not None and not connack.done():
            connack.set_exception(
                BrokerUnavailable(f"the broker at {self.address.url} closed the connection")
            )
        # Subscriptions and QoS 1 messages come back with the connection; only SUBACK and UNSUBACK
        # waits fail (a waiting publish_confirmed gets its PUBACK after the message is resent).
        for packet_id, future in list(self._pending.items()):
            if packet_id not in self._inflight and not future.done():
                future.set_exception(BrokerUnavailable(f"lost the MQTT broker at {self.address.url}"))
        if self._closing or self._loop is None:
            return
        if was_connected:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.address.url, exc or "closed")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self._loop.create_task(
                self._reconnect(), name=f"mqtt reconnect {self.client_id}"
            )

    async def _reconnect(self) -> None:
        for attempt in itertools.count():
            if self._closing:
                return
            await asyncio.sleep(self._delays[min(attempt, len(self._delays) - 1)])
            try:
                async with asyncio.timeout(10):
                    await self._connect_once()
            except (OSError, TimeoutError, BrokerUnavailable) as exc:
                self._drop()
                log.debug("reconnect to %s failed: %s", self.address.url, exc)
                continue
            log.info("reconnected to the MQTT broker at %s", self.address.url)
            return

    async def _keepalive_loop(self, framing: _Framing) -> None:
        if not self._keepalive:
            return
        while True:
            await asyncio.sleep(self._keepalive)
            if not self._pong:
                log.warning("MQTT broker at %s stopped answering pings; reconnecting", self.address.url)
                if framing.transport is not None:
                    framing.transport.abort()
                return
            self._pong = False
            self._write(packet(PINGREQ, 0, b""))
