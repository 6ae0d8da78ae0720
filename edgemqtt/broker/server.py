"""The embedded broker's network side: the listener (TCP or TLS), one task per connection, and its deadlines.

Each connection's task reads chunks, cuts them into packets with the one frame decoder of
``edgemqtt.wire`` and hands them to ``BrokerCore``. The deadlines of ``BrokerLimits`` are enforced
here, on every read: a complete CONNECT within ``connect_timeout``; then a complete packet at
least every 1.5 keepalives (keepalive 0 counts as ``max_keepalive``); and a packet whose first byte
has arrived must be complete within ``packet_timeout``. Bytes of unfinished packets count against
``max_total_buffer``, and a packet over ``max_packet`` is refused from its header.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from edgemqtt.address import BrokerAddress
from edgemqtt.broker.acl import Acl
from edgemqtt.broker.core import BrokerCore
from edgemqtt.broker.limits import BrokerLimits
from edgemqtt.broker.passwords import PasswordFile
from edgemqtt.broker.sessions import Session
from edgemqtt.errors import BrokerUnavailable, InvalidBrokerAddress, InvalidTlsFiles, ProtocolViolation
from edgemqtt.wire import CONNACK, CONNECT, DISCONNECT, FrameDecoder, PacketBody, packet

__all__ = ["EmbeddedBroker", "embedded_broker", "is_loopback"]

log = logging.getLogger("edgemqtt.broker")

_READ_CHUNK = 65536
NOT_AUTHORISED = packet(CONNACK, 0, b"\x00\x05")
_FLUSH_ON_CLOSE = 64 * 1024  # more than this left unsent when a connection ends: abort, not close


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker:
    """An MQTT 3.1.1 broker on ``host:port``; ``port=0`` picks a free port.

    ``password_file`` (mosquitto's format) makes it refuse clients without a valid user name and
    password; ``acl_file`` (mosquitto's format) limits what they publish and read; ``tls_cert`` and
    ``tls_key`` make the listener TLS, and ``tls_ca`` also requires client certificates signed by
    that CA. Without a password file it listens only on a loopback address.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        limits: BrokerLimits | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        if password_file is None and not is_loopback(host):
            raise InvalidBrokerAddress(
                f"refusing to listen on {host} without a password file: anybody who reaches it could "
                "publish and subscribe (give --password-file, or listen on 127.0.0.1)"
            )
        if (tls_key or tls_ca) and tls_cert is None:
            raise InvalidTlsFiles("a TLS key or CA for the broker needs its certificate (--tls-cert) too")
        self.host = host
        self.port = port
        self.limits = limits or BrokerLimits()
        self.password_file = password_file
        self.acl_file = acl_file
        try:
            passwords = None if password_file is None else PasswordFile(password_file)
            acl = None if acl_file is None else Acl(acl_file)
        except ValueError as exc:
            raise InvalidBrokerAddress(str(exc)) from None
        self._core = BrokerCore(self.limits, passwords, acl)
        self._ssl = None if tls_cert is None else _server_context(tls_cert, tls_key, tls_ca)
        self._require_cert = tls_ca is not None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port, tls=self._ssl is not None)

    @property
    def connections(self) -> int:
        """Connections open now (for diagnostics and tests)."""
        return len(self._connections)

    @property
    def buffered(self) -> int:
        """Bytes held for all clients now, as counted against ``max_total_buffer``."""
        return self._core.budget.total

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve,
                self.host,
                self.port,
                reuse_address=True,
                ssl=self._ssl,
                ssl_handshake_timeout=self.limits.connect_timeout if self._ssl else None,
            )
        except OSError as exc:
            raise BrokerUnavailable(
                f"embedded broker cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on %s", self.address.url)

    def reload(self) -> None:
        """Read the password file and the ACL again, as mosquitto does on SIGHUP.

        Connected clients keep their sessions and are checked against the new ACL from their next
        PUBLISH, SUBSCRIBE and delivery on; a client whose user is gone from the password file, or
        whose password no longer matches, is disconnected (as mosquitto 2.0 does). A file that
        cannot be read raises ``InvalidBrokerAddress`` and the broker keeps its old rules.
        """
        try:
            passwords = None if self.password_file is None else PasswordFile(self.password_file)
            acl = None if self.acl_file is None else Acl(self.acl_file)
        except ValueError as exc:
            raise InvalidBrokerAddress(f"{exc}; the broker keeps its previous passwords and ACL") from None
        dropped = self._core.reload(passwords, acl)
        log.info(
            "embedded MQTT broker reloaded: %s users, %s ACL; %d clients disconnected",
            "no" if passwords is None else len(passwords),
            "no" if acl is None else "the",
            dropped,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in self._core.router.sessions.values():
            session.will = None  # the broker going away is not the client dying
        # Closing the sockets ends each connection's task at its next read. They are not cancelled:
        # Python 3.11's start_server logs a cancelled client task as an unhandled exception.
        for writer in self._connections.values():
            writer.transport.abort()
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
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.limits.max_connections:
            log.warning("refusing MQTT connection from %s: %d connections open", peer, len(self._connections))
            writer.transport.abort()
            return
        self._connections[task] = writer
        core = self._core
        decoder = FrameDecoder(self.limits.max_packet)
        logged_in: list[Session] = []  # the session, once CONNECT made one: the clean-up needs it
        try:
            await self._read(reader, writer, decoder, logged_in)
        except (asyncio.IncompleteReadError, OSError):
            pass  # the client went away
        except ProtocolViolation as exc:
            log.info("closing MQTT client %s: %s", peer, exc)
        except Exception:
            log.exception("closing MQTT client %s after an unexpected error", peer)
        finally:
            self._connections.pop(task, None)
            core.budget.incoming -= decoder.pending
            if logged_in:
                core.disconnected(logged_in[0], writer)
            if writer.transport.get_write_buffer_size() > _FLUSH_ON_CLOSE:
                writer.transport.abort()
            else:
                writer.close()

    async def _read(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        decoder: FrameDecoder,
        logged_in: list[Session],
    ) -> None:
        """Serve one connection until it ends; its session goes into ``logged_in`` at CONNECT."""
        core, limits = self._core, self.limits
        loop = asyncio.get_running_loop()
        started = last_packet = packet_started = loop.time()
        session: Session | None = None
        keepalive = 0
        first = True
        while True:
            if session is None:
                deadline, late = started + limits.connect_timeout, "sent no CONNECT in time"
            else:
                deadline, late = (
                    last_packet + keepalive * 1.5,
                    f"was silent past its keepalive ({keepalive} s)",
                )
            if decoder.pending and packet_started + limits.packet_timeout < deadline:
                deadline, late = packet_started + limits.packet_timeout, "did not finish a packet in time"
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(_READ_CHUNK)
            except TimeoutError:
                raise ProtocolViolation(f"the client {late}") from None
            if not data:
                return
            if first and data[0] >> 4 != CONNECT:
                # Checked on the first byte, as mosquitto does: garbage (an HTTP request) is refused
                # at once rather than read as the length of a packet that never ends.
                raise ProtocolViolation(f"packet type {data[0] >> 4} where CONNECT was due")
            first = False
            had = decoder.pending
            frames = decoder.feed(data)
            now = loop.time()
            core.budget.incoming += decoder.pending - had
            if decoder.pending:
                if not had or frames:
                    packet_started = now
                if core.budget.over():
                    raise ProtocolViolation(
                        f"{core.budget.total} bytes are buffered for all clients (limit "
                        f"{limits.max_total_buffer}); dropping this client's unfinished packet"
                    )
            if frames:
                last_packet = now
            for kind, flags, body in frames:
                if session is None:
                    if kind != CONNECT:
                        raise ProtocolViolation(f"packet type {kind} where CONNECT was due")
                    if flags:
                        raise ProtocolViolation(f"CONNECT with flags {flags:#x}")
                    if self._require_cert and not writer.get_extra_info("peercert"):
                        log.warning(
                            "MQTT client %s refused: no client certificate", writer.get_extra_info("peername")
                        )
                        writer.write(NOT_AUTHORISED)
                        return
                    connected = core.connect(PacketBody(body), writer)
                    if connected is None:
                        return
                    session, keepalive = connected
                    logged_in.append(session)
                    continue
                if session.writer is not writer:
                    return  # taken over by a newer connection with the same client id
                if kind == DISCONNECT:
                    session.will = None
                    return
                if kind == CONNECT:
                    raise ProtocolViolation("a second CONNECT")  # MQTT-3.1.0-2
                core.dispatch(session, kind, flags, PacketBody(body))
            decoder.check()


def _server_context(cert: Path, key: Path | None, ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), None if key is None else str(key))
        if ca is not None:
            context.load_verify_locations(cafile=str(ca))
            # Optional in the handshake, required at CONNECT: asyncio drops a connection whose
            # handshake failed without sending OpenSSL's alert, so the client could not tell a
            # missing certificate from a broker gone away; CONNACK 5 tells it (see _read).
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidTlsFiles(f"cannot use the broker's TLS files ({cert}, {key}, {ca}): {reason}") from None
    return context


@contextlib.asynccontextmanager
async def embedded_broker(
    host: str = "127.0.0.1",
    port: int = 1883,
    *,
    limits: BrokerLimits | None = None,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_ca: Path | None = None,
) -> AsyncIterator[BrokerAddress]:
    """Run the embedded broker for the duration of the block; ``port=0`` picks a free port."""
    broker = EmbeddedBroker(
        host,
        port,
        limits=limits,
        password_file=password_file,
        acl_file=acl_file,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_ca=tls_ca,
    )
    await broker.start()
    try:
        yield broker.address
    finally:
        await broker.stop()
