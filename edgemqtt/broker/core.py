"""The broker's MQTT logic, apart from sockets: CONNECT and login, each packet type, and delivery.

``EmbeddedBroker`` (``edgemqtt.broker.server``) reads packets off connections and hands them here;
this module decides what they mean (MQTT 3.1.1 as mosquitto reads it) and writes the answers.
Writing is where a slow reader is caught: past ``max_client_buffer`` bytes waiting in its socket
buffer its connection is aborted, and past ``max_total_buffer`` for everybody the client holding
the most is; abort frees the buffer at once, where ``close`` would wait for a reader that never
reads.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid

from edgemqtt.broker.acl import Acl
from edgemqtt.broker.limits import BrokerLimits, OutgoingBudget
from edgemqtt.broker.passwords import PasswordFile
from edgemqtt.broker.sessions import Outgoing, Router, Session, SharedGroup, Will, parse_shared
from edgemqtt.errors import ProtocolViolation
from edgemqtt.wire import (
    CONNACK,
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
    packet,
    publish_packet,
    topic_matches,
    valid_filter,
    valid_topic,
)

__all__ = ["BrokerCore"]

log = logging.getLogger("edgemqtt.broker")

# (protocol name, level) pairs a 3.x broker speaks; any other level of these names gets CONNACK 1.
_PROTOCOLS = {"MQTT": 4, "MQIsdp": 3}
_NOT_AUTHORISED = 5  # mosquitto 2.0 answers a wrong password with 5 too, not 4


class BrokerCore:
    """Sessions, retained messages and the handling of every packet after CONNECT."""

    def __init__(self, limits: BrokerLimits, passwords: PasswordFile | None, acl: Acl | None) -> None:
        self.limits = limits
        self.passwords = passwords
        self.acl = acl
        self.router = Router(acl)
        self.budget = OutgoingBudget(limits)
        self.retained: dict[str, tuple[bytes, int]] = {}

    # -- CONNECT -----------------------------------------------------------------------------------

    def connect(self, body: PacketBody, writer: asyncio.StreamWriter) -> tuple[Session, int] | None:
        """Log the client in; its session and enforced keepalive, or ``None`` after a refusing CONNACK."""
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
        will: Will | None = None
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
        username = body.text() if flags & 0x80 else None
        password = body.raw() if flags & 0x40 else None
        if not client_id:
            if not clean or level == 3:  # MQTT 3.1 requires an id; 3.1.1 only for persistent sessions
                writer.write(packet(CONNACK, 0, b"\x00\x02"))  # identifier rejected
                return None
            client_id = f"auto-{uuid.uuid4()}"
        if self.passwords is not None and not self.passwords.check(username, password):
            peer = writer.get_extra_info("peername")
            log.warning("MQTT client %r (user %r, %s) refused: not authorised", client_id, username, peer)
            writer.write(packet(CONNACK, 0, bytes([0, _NOT_AUTHORISED])))
            return None
        existing = self.router.sessions.get(client_id)
        if existing is not None and existing.writer is not None:
            log.info("MQTT client %s connected again; closing its old connection", client_id)
            existing.writer.close()  # session take-over
            existing.writer = None
            old_will, existing.will = existing.will, None
            if old_will is not None and (existing.clean or clean):
                self.send_will(existing, old_will)  # as mosquitto: none if the persistent session goes on
        present = existing is not None and not clean and not existing.clean and existing.username == username
        if existing is not None and not present:
            self.end_session(existing)
            existing = None
        session = existing or Session(client_id, clean, username)
        session.password = password
        session.writer = writer
        session.will = will
        self.router.sessions[client_id] = session
        writer.write(packet(CONNACK, 0, bytes([1 if present else 0, 0])))
        for packet_id, (topic, payload, retain, _) in session.inflight.items():
            self.write(session, publish_packet(topic, payload, 1, packet_id, retain, dup=True))
        self.drain(session)
        return session, self.limits.keepalive(keepalive)

    def reload(self, passwords: PasswordFile | None, acl: Acl | None) -> int:
        """Use new passwords and ACL rules; disconnect the clients they no longer let in.

        As mosquitto 2.0 on SIGHUP: a connected client keeps its session, and the new ACL applies
        from its next PUBLISH, SUBSCRIBE and delivery; a client whose user is gone from the password
        file, or whose password no longer matches, is disconnected. Returns how many were.
        """
        self.passwords, self.acl = passwords, acl
        self.router.set_acl(acl)
        if passwords is None:
            return 0
        refused = [
            session
            for session in self.router.sessions.values()
            if session.writer is not None and not passwords.check(session.username, session.password)
        ]
        for session in refused:
            log.warning(
                "MQTT client %s (user %r) is no longer authorised after a reload; disconnecting it",
                session.client_id,
                session.username,
            )
            assert session.writer is not None
            session.writer.transport.abort()
        return len(refused)

    def disconnected(self, session: Session, writer: asyncio.StreamWriter) -> None:
        """The connection ``writer`` of ``session`` ended (its will is sent unless it said DISCONNECT)."""
        if session.writer is not writer:
            return  # taken over by a newer connection
        session.writer = None
        self.budget.set_share(session, session.held)
        will, session.will = session.will, None
        if session.clean:
            self.end_session(session)
        if will is not None:
            self.send_will(session, will)

    def end_session(self, session: Session) -> None:
        """Forget a session; the QoS 1 messages it held from shared groups go to other members."""
        self.router.forget(session)
        self.budget.forget(session)
        pending = [*session.inflight.values(), *session.queued]
        session.inflight.clear()
        session.queued.clear()
        session.held = 0
        for topic, payload, retain, group in pending:
            if group is not None:
                choice = self.router.readers(group, topic.decode(), exclude=session)
                if choice is not None:
                    self.send(choice[0], topic, payload, retain, qos=1, group=group)

    def send_will(self, session: Session, will: Will) -> None:
        topic, payload, qos, retain = will
        if self.acl is None or self.acl.may_write(session.username, session.client_id, topic):
            self.route(topic, payload, qos, retain)

    # -- packets after CONNECT -------------------------------------------------------------------

    def dispatch(self, session: Session, kind: int, flags: int, body: PacketBody) -> None:
        writer = session.writer
        assert writer is not None
        if kind == PUBLISH:
            self._publish(session, writer, flags, body)
            return
        if kind in (PUBREL, SUBSCRIBE, UNSUBSCRIBE):
            if flags != 0x02:
                raise ProtocolViolation(f"packet type {kind} with flags {flags:#x}")  # MQTT-3.6.1-1 …
        elif kind not in (PUBACK, PUBREC, PUBCOMP, PINGREQ):
            raise ProtocolViolation(f"unexpected packet type {kind}")
        if kind == PUBACK:
            message = session.inflight.pop(body.u16(), None)
            if message is not None:
                session.held -= len(message[0]) + len(message[1])
                self.drain(session)
        elif kind == PUBREL:
            packet_id = body.u16()
            received = session.received.pop(packet_id, None)
            if received is not None:
                self._route_from(session, received[0], received[1], 2, received[2])
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
                self.router.unsubscribe(session, body.text())
            writer.write(packet(UNSUBACK, 0, struct.pack("!H", packet_id)))
        elif kind == PINGREQ:
            writer.write(packet(PINGRESP, 0, b""))
        # PUBCOMP: we never send PUBREL but for a client's stray PUBREC; nothing to do.

    def _publish(self, session: Session, writer: asyncio.StreamWriter, flags: int, body: PacketBody) -> None:
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
            self._route_from(session, topic, body.rest(), qos, retain)
        if qos == 1:
            writer.write(packet(PUBACK, 0, struct.pack("!H", packet_id)))
        elif qos == 2:
            writer.write(packet(PUBREC, 0, struct.pack("!H", packet_id)))

    def _route_from(self, session: Session, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        # As mosquitto: a PUBLISH the ACL does not allow is acknowledged and dropped.
        if self.acl is not None and not self.acl.may_write(session.username, session.client_id, topic):
            log.info("MQTT client %s may not publish to %s; message dropped", session.client_id, topic[:200])
            return
        self.route(topic, payload, qos, retain)

    def _subscribe(self, session: Session, writer: asyncio.StreamWriter, body: PacketBody) -> None:
        packet_id = body.packet_id()
        granted = bytearray()
        new_filters = []
        while not body.done:
            topic_filter = body.text()
            requested = body.u8()
            # mosquitto disconnects for these too, though 3.1.1 would allow a 0x80 return code.
            if requested > 2:
                raise ProtocolViolation(f"SUBSCRIBE with options {requested:#x}")  # MQTT-3.8.3-4
            try:
                shared = parse_shared(topic_filter)
            except ValueError as exc:
                raise ProtocolViolation(str(exc)) from None
            if shared is None and not valid_filter(topic_filter):
                raise ProtocolViolation(f"SUBSCRIBE to invalid filter {topic_filter[:80]!r}")
            plain = topic_filter if shared is None else shared[1]
            if self.acl is not None and not self.acl.may_subscribe(
                session.username, session.client_id, plain
            ):
                log.info("MQTT client %s may not subscribe to %s", session.client_id, topic_filter[:200])
                granted.append(0x80)
                continue
            qos = min(requested, 1)
            self.router.subscribe(session, topic_filter, qos)
            granted.append(qos)
            new_filters.append((plain, qos))
        if not granted:
            raise ProtocolViolation("SUBSCRIBE with no topic filter")  # MQTT-3.8.3-3
        writer.write(packet(SUBACK, 0, struct.pack("!H", packet_id) + bytes(granted)))
        # Retained messages go out once per matching filter of this SUBSCRIBE, shared ones included,
        # as mosquitto 2.0 does.
        acl = self.acl
        for topic_filter, qos in new_filters:
            for topic, (payload, retained_qos) in self.retained.items():
                if topic_matches(topic_filter, topic) and (
                    acl is None or acl.may_read(session.username, session.client_id, topic)
                ):
                    self.send(session, topic.encode(), payload, True, qos=min(qos, retained_qos))

    # -- delivery --------------------------------------------------------------------------------

    def route(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain:
            if payload:
                self.retained[topic] = (payload, qos)
            else:
                self.retained.pop(topic, None)
        plain, groups = self.router.targets(topic)
        raw_topic = topic.encode()
        for session, sub_qos in plain:
            self.send(session, raw_topic, payload, False, qos=min(qos, sub_qos))
        for group in groups:
            choice = self.router.readers(group, topic)
            # One copy per client, as mosquitto: a member that has it from a plain subscription
            # already takes its turn in the group without a second copy.
            if choice is not None and not any(choice[0] is session for session, _ in plain):
                self.send(choice[0], raw_topic, payload, False, qos=min(qos, choice[1]), group=group)

    def send(
        self,
        session: Session,
        topic: bytes,
        payload: bytes,
        retain: bool,
        *,
        qos: int,
        group: SharedGroup | None = None,
    ) -> None:
        if qos == 0:
            if session.writer is not None:
                self.write(session, publish_packet(topic, payload, 0, 0, retain, False))
            return
        size = len(topic) + len(payload)
        limits = self.limits
        if (
            len(session.queued) >= limits.max_queued
            or session.held + size > limits.max_client_buffer
            or self.budget.total + size > limits.max_total_buffer
        ):
            if not session.dropping:
                log.warning(
                    "MQTT client %s holds %d messages (%d bytes); dropping its messages until it reads",
                    session.client_id,
                    len(session.queued) + len(session.inflight),
                    session.held,
                )
                session.dropping = True
            return
        session.dropping = False
        session.queued.append((topic, payload, retain, group))
        session.held += size
        if session.writer is None:
            self._account(session, session.held)
        self.drain(session)

    def drain(self, session: Session) -> None:
        """Send queued QoS 1 messages, in order, while the client is here and the window allows."""
        max_inflight = self.limits.max_inflight
        while session.writer is not None and session.queued and len(session.inflight) < max_inflight:
            message: Outgoing = session.queued.popleft()
            packet_id = session.next_id()
            session.inflight[packet_id] = message
            self.write(session, publish_packet(message[0], message[1], 1, packet_id, message[2], False))

    def write(self, session: Session, data: bytes) -> None:
        writer = session.writer
        if writer is None:
            return
        transport = writer.transport
        if transport.is_closing():
            return
        transport.write(data)
        buffered = transport.get_write_buffer_size()
        if buffered > self.limits.max_client_buffer:
            self.cut(session, f"reads too slowly ({buffered} bytes wait for it)")
            return
        self._account(session, buffered + session.held)

    def _account(self, session: Session, size: int) -> None:
        budget = self.budget
        budget.set_share(session, size)
        if not budget.over():
            return
        for owner in budget.owners():  # measure again: shares only overestimate
            assert isinstance(owner, Session)
            writer = owner.writer
            buffered = 0 if writer is None else writer.transport.get_write_buffer_size()
            budget.set_share(owner, buffered + owner.held)
        while budget.over():
            largest = budget.largest()
            if (
                not isinstance(largest, Session)
                or largest.writer is None
                or largest.writer.transport.is_closing()
            ):
                return  # away sessions hold the most: new messages for them are dropped (send)
            self.cut(largest, f"holds the most of {budget.total} bytes buffered for all clients")

    def cut(self, session: Session, why: str) -> None:
        """Disconnect a client for real: abort drops its buffers at once (close would wait for it)."""
        writer = session.writer
        if writer is None:
            return
        log.warning("MQTT client %s %s; disconnecting it", session.client_id, why)
        writer.transport.abort()
        self.budget.set_share(session, session.held)
