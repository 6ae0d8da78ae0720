"""A small asyncio MQTT 3.1.1 client, shared by every edgetwin component.

It is an ``asyncio.Protocol`` over the one frame decoder of ``edgemqtt.wire`` (``edgemqtt``'s
package docstring says why it is hand-written):

* QoS 0 and 1 publishing (``publish`` never blocks; ``publish_confirmed`` waits for the PUBACK),
  QoS 0, 1 and 2 receiving, subscriptions, keepalive pings, a will message;
* TLS (``mqtts://``, CA file, client certificate, host names checked) and user name and password;
* asyncio's TCP transports set ``TCP_NODELAY``;
* a lost broker is reconnected with backoff. With ``clean_session=True`` subscriptions are made
  again on every reconnect; with ``clean_session=False`` only when CONNACK says the broker lost the
  session (session present = 0). QoS 1 messages not yet acknowledged are sent again, with DUP set,
  on EVERY reconnect, whether the session survived or not: MQTT-3.1.1 §4.4 requires a client to
  resend them when it reconnects with a persistent session, and with a lost one they would else be
  lost. Messages published while away (up to ``max_queued``) follow them, so a service survives a
  broker restart without losing what it published at QoS 1;
* ``on_connect`` is called after every connection is established (the first and each reconnect),
  once subscriptions and unacknowledged messages are on their way, with CONNACK's session-present
  flag: a service that must announce itself on every connection (a cloud link's hello) hooks in here;
* a refusal that a retry will not change (CONNACK 4 bad user name or password, 5 not authorised, a
  TLS certificate that is not trusted, SUBACK 0x80) is a permanent error: ``connect()`` and
  ``subscribe()`` raise it at once; while reconnecting it is logged once, as an error naming the
  reason, and tried again only every ``refused_delay`` seconds (60 by default), never spun on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
import struct
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Self

from edgemqtt.address import BrokerAddress
from edgemqtt.connection import (
    Framing,
    Message,
    MessageHandler,
    SocketOptions,
    Will,
    connack_error,
    connect_packet,
    lost_before_connack,
    open_connection,
)
from edgemqtt.errors import BrokerUnavailable, MqttError, SubscriptionRefused
from edgemqtt.retry import REFUSED_DELAY, keep_trying
from edgemqtt.wire import (
    CONNACK,
    DISCONNECT,
    MAX_PACKET,
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

__all__ = ["BrokerAddress", "Message", "MessageHandler", "MqttClient", "SocketOptions", "Will"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class MqttClient:
    """An MQTT 3.1.1 connection driven by the running asyncio loop.

    Use as ``async with MqttClient(address, on_message=handler) as client``. ``handler`` is called
    in the loop for every message, in arrival order; it must not block (put work on a queue).
    ``on_connect(session_present)`` likewise, after each connection is established.
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
        will: Will | None = None,
        refused_delay: float = REFUSED_DELAY,
        max_packet: int = MAX_PACKET,
        on_connect: Callable[[bool], None] | None = None,
    ) -> None:
        self.address = BrokerAddress.parse(address) if isinstance(address, str) else address
        self.client_id = client_id or f"edgetwin-{os.getpid()}-{next(_ids)}"
        self.will = will
        self.refused_delay = refused_delay
        self._on_message = on_message
        self._on_connect = on_connect
        self._keepalive = keepalive
        self._delays = tuple(reconnect_delays) or (1.0,)
        self._clean_session = clean_session
        self._max_queued = max_queued
        self._max_packet = max_packet
        self._ssl: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._framing: Framing | None = None
        self._connected = asyncio.Event()
        self._connack: asyncio.Future[bool] | None = None
        self._subscriptions: dict[str, int] = {}
        self._subscribing: dict[int, tuple[str, ...]] = {}  # SUBSCRIBE packet id -> its filters
        self._pending: dict[int, asyncio.Future[None]] = {}  # SUBACK, UNSUBACK, PUBACK awaited
        self._inflight: dict[int, tuple[bytes, bytes, bool, bool]] = {}  # QoS 1: topic, payload, retain, sent
        self._qos2_received: set[int] = set()
        self._packet_ids = itertools.count(1)
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self.session_present = False

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

    async def connect(self, timeout: float = 10.0, *, retry: bool = False) -> None:
        """Connect and wait for the broker's CONNACK.

        Without ``retry``: ``BrokerUnavailable`` if the broker cannot be reached in ``timeout``
        seconds, a ``ConnectionRefused`` at once if it refuses. With ``retry`` (long-lived
        services): try until connected, after ``reconnect_delays`` for a broker that is away and
        ``refused_delay`` for a refusal, each kind logged once; only a bad address still raises.
        """
        self._loop = asyncio.get_running_loop()
        self._closing = False
        if self._ssl is None:
            self._ssl = self.address.ssl_context()  # InvalidTlsFiles: the address is unusable
        if not retry:
            await self._attempt(timeout)
            return
        await self._retry(timeout, first_delay=0.0)

    async def _attempt(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._connect_once()
        except TimeoutError:
            self._drop()
            raise BrokerUnavailable(
                f"the MQTT broker at {self.address.url} did not answer within {timeout:g} s"
            ) from None
        except (MqttError, asyncio.CancelledError):
            # Cancelled too (a service stopping while it connects): no half-made connection stays open.
            self._drop()
            raise

    async def _retry(self, timeout: float, *, first_delay: float) -> None:
        await keep_trying(
            lambda: self._attempt(timeout),
            url=self.address.url,
            delays=self._delays,
            refused_delay=self.refused_delay,
            first_delay=first_delay,
            stopped=lambda: self._closing,
        )

    async def _connect_once(self) -> None:
        assert self._loop is not None
        framing = await open_connection(
            self.address,
            self._ssl,
            lambda: Framing(self.address, self._on_packet, self._on_lost, self._max_packet),
        )
        self._framing = framing
        self._connack = self._loop.create_future()
        assert framing.transport is not None
        framing.transport.write(
            connect_packet(self.address, self.client_id, self._keepalive, self._clean_session, self.will)
        )
        self.session_present = await self._connack
        self._connected.set()
        framing.start_keepalive(self._keepalive)
        if self._subscriptions and not self.session_present:
            self._send_subscribe(list(self._subscriptions.items()))
        for packet_id, (topic, payload, retain, sent) in list(self._inflight.items()):
            self._write(publish_packet(topic, payload, 1, packet_id, retain, dup=sent))
            self._inflight[packet_id] = (topic, payload, retain, True)
        if self._on_connect is not None:
            try:
                self._on_connect(self.session_present)
            except Exception:
                # A hook's bug must not cost the connection (nor make it look refused).
                log.exception("connect hook failed after connecting to %s", self.address.url)

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
        if self._framing is not None and self._framing.transport is not None:
            self._framing.stop_keepalive()
            self._framing.transport.abort()
        self._framing = None

    def _fail_pending(self, error: MqttError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: nobody may be waiting any more
        self._pending.clear()

    # -- API ---------------------------------------------------------------------------------------

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        """Subscribe and wait for SUBACK; ``SubscriptionRefused`` names the filters refused.

        Granted subscriptions are restored after a reconnect; refused ones are forgotten.
        """
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
        self._subscribing[packet_id] = tuple(topic for topic, _ in topics)
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

    def _resolve(self, packet_id: int, error: MqttError | None = None) -> None:
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
            if not self._inflight:
                # A dict keeps the table its largest burst grew to (~300 KB after a node's thousand
                # devices' events at once) for as long as it lives: emptied, it starts afresh.
                self._inflight = {}
            self._resolve(packet_id)
        elif kind == PUBREL:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._qos2_received.discard(packet_id)
            self._write(packet(PUBCOMP, 0, body[:2]))
        elif kind == SUBACK:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._on_suback(packet_id, body[2:])
        elif kind == UNSUBACK:
            (packet_id,) = struct.unpack("!H", body[:2])
            self._resolve(packet_id)
        elif kind == PINGRESP:
            if self._framing is not None:
                self._framing.pong = True
        elif kind == CONNACK:
            future = self._connack
            if future is not None and not future.done():
                if body[1]:
                    future.set_exception(connack_error(self.address, body[1]))
                else:
                    future.set_result(bool(body[0] & 0x01))

    def _on_suback(self, packet_id: int, codes: bytes) -> None:
        filters = self._subscribing.pop(packet_id, ())
        refused = tuple(f for f, code in zip(filters, codes, strict=False) if code & 0x80)
        if not refused:
            self._resolve(packet_id)
            return
        for topic_filter in refused:
            self._subscriptions.pop(topic_filter, None)  # not asked for again on reconnects
        error = SubscriptionRefused(
            f"the MQTT broker at {self.address.url} refused the subscription to "
            f"{', '.join(refused)} (not authorised, or an invalid filter)",
            refused,
        )
        if packet_id in self._pending:
            self._resolve(packet_id, error)
        else:
            log.error("%s", error)  # a resubscription after a reconnect: nobody waits for it

    def _deliver(self, message: Message) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(message)
        except Exception:
            # A handler bug must not take the connection down with it.
            log.exception("message handler failed for %s", message.topic)

    def _on_lost(self, framing: Framing, exc: Exception | None) -> None:
        if framing is not self._framing:
            return  # an older connection, already replaced
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._framing = None
        connack = self._connack
        if connack is not None and not connack.done():
            connack.set_exception(lost_before_connack(self.address, exc))
        # Subscriptions and QoS 1 messages come back with the connection; only SUBACK and UNSUBACK
        # waits fail (a waiting publish_confirmed gets its PUBACK after the message is resent).
        for packet_id, future in list(self._pending.items()):
            if packet_id not in self._inflight and not future.done():
                future.set_exception(BrokerUnavailable(f"lost the MQTT broker at {self.address.url}"))
        self._subscribing.clear()
        if self._closing or self._loop is None:
            return
        if was_connected:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.address.url, exc or "closed")
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self._loop.create_task(
                self._retry(10.0, first_delay=self._delays[0]), name=f"mqtt reconnect {self.client_id}"
            )
