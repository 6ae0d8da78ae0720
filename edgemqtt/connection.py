"""One client connection to a broker: TCP or TLS, CONNECT/CONNACK, keepalive pings, and what failed.

The client (``edgemqtt.client``) keeps the state that outlives a connection (subscriptions,
unacknowledged messages); this module opens one connection, cuts its bytes into packets with the
one frame decoder of ``edgemqtt.wire``, and turns every way a connection can fail into the
transport's error tree: temporary (``BrokerUnavailable``) or permanent (``ConnectionRefused`` and its
leaves), so that callers can tell "retry soon" from "a person must change something".
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgemqtt.address import BrokerAddress
from edgemqtt.errors import (
    BadUsernameOrPassword,
    BrokerUnavailable,
    ConnectionRefused,
    MqttError,
    NotAuthorised,
    ProtocolViolation,
    TlsRefused,
)
from edgemqtt.wire import CONNECT, MAX_PACKET, PINGREQ, FrameDecoder, encode_string, packet

__all__ = [
    "Framing",
    "Message",
    "MessageHandler",
    "SocketOptions",
    "Will",
    "connack_error",
    "connect_packet",
    "lost_before_connack",
    "open_connection",
]

log = logging.getLogger("edgemqtt.client")

_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


@dataclass(frozen=True, slots=True)
class Will:
    """The message the broker publishes for the client when its connection ends without DISCONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False

    def __post_init__(self) -> None:
        if not self.topic or "+" in self.topic or "#" in self.topic:
            raise ValueError(f"will topic {self.topic!r} must be a topic name without wildcards")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"will QoS {self.qos} is not 0, 1 or 2")


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes


MessageHandler = Callable[[Message], None]
PacketHandler = Callable[[int, int, bytes], None]


class SocketOptions(Protocol):
    def getsockopt(self, level: int, option: int, /) -> int: ...

    def getsockname(self) -> Any: ...


class Framing(asyncio.Protocol):
    """Feeds the connection's bytes to the frame decoder and each packet to ``on_packet``."""

    def __init__(
        self,
        address: BrokerAddress,
        on_packet: PacketHandler,
        on_lost: Callable[[Framing, Exception | None], None],
        max_packet: int = MAX_PACKET,
    ) -> None:
        self._address = address
        self._on_packet = on_packet
        self._on_lost = on_lost
        self._decoder = FrameDecoder(max_packet)
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pong = True  # the broker answered the last PINGREQ
        self._keepalive: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self._decoder.feed(data)
        except ProtocolViolation as exc:
            self._violation(str(exc))
            return
        on_packet = self._on_packet
        for kind, flags, body in frames:
            try:
                on_packet(kind, flags, body)
            except (struct.error, IndexError, UnicodeDecodeError):
                self._violation(f"malformed packet of type {kind}")
                return
        if self._decoder.error is not None:
            self._violation(str(self._decoder.error))

    def _violation(self, what: str) -> None:
        log.warning("MQTT broker at %s sent a %s; reconnecting", self._address.url, what)
        if self.transport is not None:
            self.transport.abort()

    def start_keepalive(self, seconds: int) -> None:
        """PINGREQ every ``seconds`` (0: never); no PINGRESP by the next one drops the connection."""
        if seconds:
            self.pong = True
            self._keepalive = asyncio.get_running_loop().create_task(
                self._keepalive_loop(seconds), name=f"mqtt keepalive {self._address.url}"
            )

    def stop_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    async def _keepalive_loop(self, seconds: int) -> None:
        while self.transport is not None:
            await asyncio.sleep(seconds)
            if not self.pong:
                log.warning("MQTT broker at %s stopped answering pings; reconnecting", self._address.url)
                self.transport.abort()
                return
            self.pong = False
            self.transport.write(packet(PINGREQ, 0, b""))

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_keepalive()
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(self, exc)


def connect_packet(
    address: BrokerAddress, client_id: str, keepalive: int, clean_session: bool, will: Will | None
) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id.encode())
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        payload += encode_string(will.topic.encode()) + encode_string(will.payload)
    if address.username is not None:
        flags |= 0x80
        payload += encode_string(address.username.encode())
        if address.password is not None:
            flags |= 0x40
            payload += encode_string(address.password.encode())
    header = encode_string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, header + payload)


def connack_error(address: BrokerAddress, code: int) -> MqttError:
    """The error for a CONNACK return code other than 0: permanent but for 3 (server unavailable)."""
    reason = _CONNACK_REASONS.get(code, f"return code {code}")
    who = "" if address.username is None else f" of user {address.username!r}"
    message = f"the MQTT broker at {address.url} refused the connection{who}: {reason}"
    if code == 3:
        return BrokerUnavailable(message)
    if code == 4:
        return BadUsernameOrPassword(message, code, reason)
    if code == 5:
        return NotAuthorised(message, code, reason)
    return ConnectionRefused(message, code, reason)


async def open_connection(
    address: BrokerAddress,
    context: ssl.SSLContext | None,
    framing: Callable[[], Framing],
) -> Framing:
    """Open TCP (and TLS) to the broker; every failure as ``BrokerUnavailable`` or ``TlsRefused``."""
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_connection(
            framing,
            address.host,
            address.port,
            ssl=context,
            server_hostname=address.host if context is not None else None,
        )
    except ssl.SSLCertVerificationError as exc:
        reason = exc.verify_message or exc.reason or str(exc)
        raise TlsRefused(
            f"the certificate of the MQTT broker at {address.url} is not trusted: {reason}", None, reason
        ) from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "ALERT" in str(reason).upper():
            # The broker ended the handshake: it wants a client certificate, or not this one.
            raise TlsRefused(
                f"the MQTT broker at {address.url} refused the TLS handshake: {reason}", None, str(reason)
            ) from None
        raise BrokerUnavailable(f"TLS to the MQTT broker at {address.url} failed: {reason}") from None
    except OSError as exc:
        raise BrokerUnavailable(
            f"cannot connect to MQTT broker at {address.url}: {exc.strerror or exc}"
        ) from None
    return protocol


def lost_before_connack(address: BrokerAddress, exc: Exception | None) -> MqttError:
    """The error for a connection that ended before CONNACK, with ``exc`` from ``connection_lost``."""
    # With TLS 1.3 the broker checks a client certificate after the handshake: its refusal
    # arrives as an alert in place of CONNACK.
    if isinstance(exc, ssl.SSLError) and "ALERT" in str(exc.reason).upper():
        reason = str(exc.reason)
        return TlsRefused(
            f"the MQTT broker at {address.url} refused the TLS connection: {reason}", None, reason
        )
    return BrokerUnavailable(f"the MQTT broker at {address.url} closed the connection")
