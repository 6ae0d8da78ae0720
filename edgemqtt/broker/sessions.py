"""Sessions and routing: who is subscribed to what, and which sessions a message on a topic goes to.

A session outlives its connection when the client asked for a persistent one (``clean_session=0``).
Routing follows mosquitto: overlapping subscriptions of one session give one copy at the highest
QoS; a filter starting with a wildcard does not match ``$`` topics; and MQTT 3.1.1 shared
subscriptions ``$share/GROUP/FILTER`` give each message to ONE member of the group, in turn
(round-robin), preferring members that are connected; a client that has the message from a
plain subscription too gets one copy, and retained messages are sent on a new shared
subscription, both as mosquitto 2.0 does. A member that unsubscribes or leaves gets no more of the
group's messages; what a leaving clean-session member had been sent at QoS 1 and not acknowledged
goes to another member (``BrokerCore.end_session``). A member with a persistent session keeps its
share while away and gets it when it comes back.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass, field

from edgemqtt.broker.acl import Acl
from edgemqtt.wire import topic_matches, valid_filter

__all__ = ["Outgoing", "Router", "Session", "SharedGroup", "parse_shared"]

SHARE_PREFIX = "$share/"

#: A QoS 1 message for one session: topic, payload, retain, and the shared group it went to.
Outgoing = tuple[bytes, bytes, bool, "SharedGroup | None"]
Will = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


@dataclass(eq=False)
class Session:
    client_id: str
    clean: bool
    username: str | None = None
    #: The password the client logged in with, checked again when the broker reloads its files.
    password: bytes | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    writer: asyncio.StreamWriter | None = None
    will: Will | None = None
    inflight: dict[int, Outgoing] = field(default_factory=dict)  # sent at QoS 1, awaiting PUBACK
    queued: deque[Outgoing] = field(default_factory=deque)  # QoS 1, not sent yet
    held: int = 0  # bytes of the queued and inflight messages' topics and payloads
    received: dict[int, tuple[str, bytes, bool]] = field(default_factory=dict)  # QoS 2 awaiting PUBREL
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    dropping: bool = False  # messages are being dropped for it (logged once per episode)

    def next_id(self) -> int:
        # The inflight window (BrokerLimits.max_inflight) is far below 65535: a free id always exists.
        while True:
            packet_id = next(self.ids) % 65536
            if packet_id and packet_id not in self.inflight:
                return packet_id


class SharedGroup:
    """The members of one ``$share/GROUP/FILTER``, in the order they subscribed."""

    def __init__(self, name: str, topic_filter: str) -> None:
        self.name = name
        self.topic_filter = topic_filter
        self.members: dict[Session, int] = {}  # session -> granted QoS
        self._turn = 0

    def pick(self, exclude: Session | None = None) -> tuple[Session, int] | None:
        """The next member in turn, a connected one if any is (and never ``exclude``)."""
        members = [m for m in self.members if m is not exclude]
        if not members:
            return None
        connected = [m for m in members if m.writer is not None] or members
        self._turn = (self._turn + 1) % len(connected)
        chosen = connected[self._turn]
        return chosen, self.members[chosen]


def parse_shared(topic_filter: str) -> tuple[str, str] | None:
    """``(group, filter)`` of a ``$share/GROUP/FILTER``; ``None`` for another filter.

    ``ValueError`` for a malformed one (empty group, wildcard in the group, invalid filter).
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None
    group, sep, rest = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not sep or not group or "+" in group or "#" in group or not valid_filter(rest):
        raise ValueError(f"malformed shared subscription {topic_filter[:80]!r}")
    return group, rest


class Router:
    """Subscriptions of every session and the (cached) targets of each topic."""

    def __init__(self, acl: Acl | None = None) -> None:
        self.acl = acl
        self.sessions: dict[str, Session] = {}
        self.groups: dict[tuple[str, str], SharedGroup] = {}
        self._routes: dict[str, tuple[list[tuple[Session, int]], list[SharedGroup]]] = {}

    def subscribe(self, session: Session, topic_filter: str, qos: int) -> None:
        shared = parse_shared(topic_filter)
        session.subscriptions[topic_filter] = qos
        if shared is not None:
            group = self.groups.get(shared)
            if group is None:
                group = self.groups[shared] = SharedGroup(*shared)
            group.members[session] = qos
        self._routes.clear()

    def unsubscribe(self, session: Session, topic_filter: str) -> None:
        if session.subscriptions.pop(topic_filter, None) is None:
            return
        shared = parse_shared(topic_filter)
        if shared is not None:
            group = self.groups.get(shared)
            if group is not None:
                group.members.pop(session, None)
                if not group.members:
                    del self.groups[shared]
        self._routes.clear()

    def set_acl(self, acl: Acl | None) -> None:
        """New rules (a reload): the cached targets were computed with the old ones."""
        self.acl = acl
        self._routes.clear()

    def forget(self, session: Session) -> None:
        """Remove a session and its subscriptions (a clean session that ended, or one replaced)."""
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        for topic_filter in list(session.subscriptions):
            self.unsubscribe(session, topic_filter)

    def targets(self, topic: str) -> tuple[list[tuple[Session, int]], list[SharedGroup]]:
        """Sessions with a plain subscription to ``topic`` (best QoS each), and matching groups."""
        route = self._routes.get(topic)
        if route is not None:
            return route
        acl = self.acl
        plain: list[tuple[Session, int]] = []
        for session in self.sessions.values():
            best = -1
            for topic_filter, sub_qos in session.subscriptions.items():
                shared = topic_filter.startswith(SHARE_PREFIX)
                if sub_qos > best and not shared and topic_matches(topic_filter, topic):
                    best = sub_qos
            if best >= 0 and (acl is None or acl.may_read(session.username, session.client_id, topic)):
                plain.append((session, best))
        groups = [g for g in self.groups.values() if topic_matches(g.topic_filter, topic)]
        if len(self._routes) > 50_000:
            self._routes.clear()
        self._routes[topic] = route = (plain, groups)
        return route

    def readers(
        self, group: SharedGroup, topic: str, exclude: Session | None = None
    ) -> tuple[Session, int] | None:
        """The member of ``group`` to get a message on ``topic`` (one the ACL lets read it)."""
        for _ in range(len(group.members)):
            choice = group.pick(exclude)
            if choice is None:
                return None
            session = choice[0]
            if self.acl is None or self.acl.may_read(session.username, session.client_id, topic):
                return choice
        return None
