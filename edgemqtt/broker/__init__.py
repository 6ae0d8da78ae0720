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
unacknowledged and queued QoS 1 messages kept in memory while the client is away, within the
limits; QoS 0 messages for an absent client are dropped, mosquitto's default); shared
subscriptions ``$share/GROUP/FILTER`` (``sessions``). Publishes to ``$SYS`` topics are accepted and
dropped, as mosquitto does.

Security: user names and passwords from a mosquitto password file (``passwords``), an ACL file in
mosquitto's format (``acl``), a TLS listener with optional client certificates, and limits for
hostile clients (``limits``: packet size, deadlines, keepalive, connections, buffered bytes).
Without a password file it is anonymous (like ``allow_anonymous true``) and listens only on a
loopback address. ``EmbeddedBroker.reload()`` (``edgetwin broker`` on SIGHUP) reads the password
file and the ACL again, as mosquitto does on SIGHUP: clients keep their sessions under the new
rules, and those whose user is gone or whose password changed are disconnected.

A client that breaks the protocol (malformed packet, first packet not CONNECT, PUBLISH to a
wildcard topic, SUBSCRIBE to an invalid filter or at QoS 3, a server-only packet…) or passes a
limit is disconnected without affecting the others; a bad protocol level gets CONNACK 1, an empty
client id with ``clean_session=0`` CONNACK 2, a refused login CONNACK 5 (as mosquitto 2.0). Stopping
the broker closes every connection and sends no wills.

What it does not do: MQTT 5, WebSockets, bridges, ``$SYS`` statistics, delivery at QoS 2,
persistence to disk, several listeners at once. For several gateways, or any of the above, use
mosquitto: the twin service speaks to both the same way.

Modules: ``server`` (listener, connections, deadlines), ``core`` (packets, login, delivery),
``sessions`` (sessions, routing, shared groups), ``passwords``, ``acl``, ``limits``.
"""

from edgemqtt.broker.acl import Acl
from edgemqtt.broker.limits import BrokerLimits
from edgemqtt.broker.passwords import PasswordFile, hash_password, password_entry
from edgemqtt.broker.server import EmbeddedBroker, embedded_broker
from edgemqtt.wire import topic_matches

__all__ = [
    "Acl",
    "BrokerLimits",
    "EmbeddedBroker",
    "PasswordFile",
    "embedded_broker",
    "hash_password",
    "password_entry",
    "topic_matches",
]
