"""A small asyncio MQTT client on top of paho-mqtt 2.x, shared by every edgetwin component.

Why not plain paho: its network loop is a thread or a blocking call, and it leaves Nagle's algorithm
on, which costs ~40 ms per request/response hop on loopback (DESIGN.md §11). Here paho's socket is
driven by the event loop (``add_reader``/``add_writer``, paho's documented external-loop hooks),
``TCP_NODELAY`` is set on every connection, and a lost broker is reconnected with backoff while the
subscriptions are restored, so services survive a broker restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from twin.errors import BrokerUnavailable

__all__ = ["BrokerAddress", "Message", "MessageHandler", "MqttClient"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)


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
    ) -> None:
        self.address = BrokerAddress.parse(address) if isinstance(address, str) else address
        self.client_id = client_id or f"edgetwin-{os.getpid()}-{next(_ids)}"
        self._on_message = on_message
        self._keepalive = keepalive
        self._delays = tuple(reconnect_delays) or (1.0,)
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
        )
        if self.address.username is not None:
            self._client.username_pw_set(self.address.username, self.address.password)
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_publish = self._handle_publish
        self._client.on_socket_open = self._socket_open
        self._client.on_socket_close = self._socket_close
        self._client.on_socket_register_write = self._register_write
        self._client.on_socket_unregister_write = self._unregister_write
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._connect_result: asyncio.Future[None] | None = None
        self._pending_subs: dict[int, asyncio.Future[None]] = {}
        self._pending_pubs: dict[int, asyncio.Future[None]] = {}
        self._subscriptions: dict[str, int] = {}
        self._misc_task: asyncio.Task[None] | None = None
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

    async def connect(self, timeout: float = 10.0) -> None:
        """Connect and wait for the broker's CONNACK; ``BrokerUnavailable`` if it does not come."""
        self._loop = asyncio.get_running_loop()
        self._closing = False
        try:
            async with asyncio.timeout(timeout):
                await self._connect_once()
        except (OSError, TimeoutError) as exc:
            self._drop_socket()
            raise BrokerUnavailable(f"cannot connect to MQTT broker at {self.address.url}: {exc}") from exc

    async def _connect_once(self) -> None:
        assert self._loop is not None
        self._connect_result = self._loop.create_future()
        # paho's connect is a plain blocking TCP connect; brokers are local or on the LAN, and the
        # socket callbacks must run on the loop's thread, so it is not moved to a thread.
        self._client.connect(self.address.host, self.address.port, keepalive=self._keepalive)
        await self._connect_result

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        if self._client.is_connected():
            self._client.disconnect()
            # Let the DISCONNECT packet leave before the socket goes.
            for _ in range(10):
                if self._client.socket() is None:
                    break
                await asyncio.sleep(0.01)
        self._drop_socket()
        self._connected.clear()
        for fut in [*self._pending_pubs.values(), *self._pending_subs.values()]:
            if not fut.done():
                fut.set_exception(BrokerUnavailable("client closed"))
        self._pending_pubs.clear()
        self._pending_subs.clear()

    def _drop_socket(self) -> None:
        sock = self._client.socket()
        if sock is not None and self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
        with contextlib.suppress(OSError):
            self._client._sock_close()

    # -- API ---------------------------------------------------------------------------------------

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        """Subscribe and wait for SUBACK; subscriptions are restored after a reconnect."""
        for topic in topics:
            self._subscriptions[topic] = qos
        if not topics or not self.connected:
            return
        result, mid = self._client.subscribe([(t, qos) for t in topics])
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise BrokerUnavailable(f"subscribe failed: {paho.error_string(result)}")
        await self._wait(self._pending_subs, mid)

    async def unsubscribe(self, *topics: str) -> None:
        for topic in topics:
            self._subscriptions.pop(topic, None)
        if topics and self.connected:
            self._client.unsubscribe(list(topics))

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False) -> None:
        """Queue a message; it leaves as soon as the socket is writable (never blocks)."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerUnavailable(f"publish to {topic} failed: {paho.error_string(info.rc)}")

    async def publish_confirmed(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        if not self.connected:
            raise BrokerUnavailable(f"not connected to {self.address.url}")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        if info.is_published():
            return
        await self._wait(self._pending_pubs, info.mid)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def _wait(self, pending: dict[int, asyncio.Future[None]], mid: int) -> None:
        assert self._loop is not None
        fut = pending.get(mid)
        if fut is None:
            fut = pending[mid] = self._loop.create_future()
        try:
            await fut
        finally:
            pending.pop(mid, None)

    # -- paho callbacks (all run in the loop's thread) ------------------------------------------

    def _handle_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        fut = self._connect_result
        if reason_code.is_failure:
            error = BrokerUnavailable(f"broker at {self.address.url} refused the connection: {reason_code}")
            if fut is not None and not fut.done():
                fut.set_exception(error)
            return
        self._connected.set()
        if self._subscriptions:
            client.subscribe(list(self._subscriptions.items()))
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _handle_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: Any,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._closing or self._loop is None:
            return
        if was_connected:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.address.url, reason_code)
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
                self._drop_socket()
                log.debug("reconnect to %s failed: %s", self.address.url, exc)
                continue
            log.info("reconnected to the MQTT broker at %s", self.address.url)
            return

    def _handle_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(Message(msg.topic, bytes(msg.payload)))
        except Exception:
            # A handler bug must not take the connection down with it.
            log.exception("message handler failed for %s", msg.topic)

    def _handle_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self._resolve(self._pending_subs, mid)

    def _handle_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        self._resolve(self._pending_pubs, mid)

    def _resolve(self, pending: dict[int, asyncio.Future[None]], mid: int) -> None:
        fut = pending.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(None)

    def _socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, self._read_available, sock)
        self._misc_task = self._loop.create_task(self._misc_loop(), name=f"mqtt keepalive {self.client_id}")

    def _socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock)
                self._loop.remove_writer(sock)
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None

    def _read_available(self, sock: socket.socket) -> None:
        # paho reads one packet per loop_read (more only while QoS messages are outstanding); under
        # load that is one event-loop wake-up per packet. Drain what the socket already holds.
        for _ in range(256):
            if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return
            if self._client.socket() is not sock:
                return
            try:
                if not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    return
            except OSError:  # BlockingIOError: nothing left to read
                return

    def _register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._loop.add_writer(sock, client.loop_write)

    def _unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        # paho's keepalive pings and its detection of a dead connection live in loop_misc.
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1)
