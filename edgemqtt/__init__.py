"""edgetwin's MQTT 3.1.1 transport: an asyncio client, an embedded broker and the wire format.

It is the bottom layer of edgetwin and imports nothing of it. Modules: ``address`` (broker URLs,
credentials, TLS settings), ``wire`` (the one frame decoder and the packet format), ``connection``
(one client connection and what its failures mean), ``client`` (``MqttClient``), ``retry`` (how a
long-lived client keeps trying), ``errors``, and ``broker/`` (the embedded broker). docs/mqtt.md
is the user's guide.

Why a hand-written client. The twin service's throughput rests on its client's CPU per message: it
publishes a result and a document for every update, at QoS 1. CPU time of the publishing process
per QoS 1 publish acknowledged by mosquitto, measured on this machine (2 cores, AMD EPYC, Python
3.11) by ``bench/mqtt_client_cpu.py``, same run, same mosquitto, window of 100:

* edgemqtt: 8-11 µs (medians 8.7 and 10.5 in two runs); over TLS 11-16 µs (medians 11.0, 13.6);
* gmqtt 0.8: 10-15 µs (medians 10.5, 14.6);
* paho-mqtt 2.2: 53-83 µs (medians 58, 60): a network thread and a ``threading.Condition`` per
  message, and MQTT 5 property objects built even for MQTT 3.1.1; it also leaves Nagle's
  algorithm on (~40 ms per request/response hop on loopback without ``set_tcp_nodelay``);
* aiomqtt 2.5: 68-83 µs (medians 83, 73): paho underneath, plus a future per message.

Measured with the machine's load average at 2-3 from other work. Earlier measurements with
another harness gave 5-7 µs for this client, 10-15 for gmqtt, 107-141 for paho and 171-198 for
aiomqtt: the order is the same. gmqtt is the only one in the same class,
and it was the fallback if TLS and the rest had cost more than the speed is worth. They did not:
TLS, the will, permanent refusals, percent-decoded credentials and the single frame decoder left
the plain cost within noise of the client before them (alternating runs of both: 8-12 µs each,
either one ahead depending on which ran first; a profile shows the same Python work per message),
TLS adds 2-3 µs, and gmqtt would bring its own MQTT 5 machinery and error model that the twin would
have to translate anyway. So the client stays ours: about 430 lines over ``wire``, no dependency.

Why a hand-written broker. KubeEdge's topics start with ``$hw/``; amqtt, the pure-Python broker on
PyPI, refuses a PUBLISH to any ``$`` topic and drops the client, reading MQTT-4.7.2-1 more strictly
than mosquitto does. The embedded broker follows mosquitto, so ``edgetwin up`` works with nothing
installed but Python; production gateways can use mosquitto, and the tests run every broker
behaviour against both.
"""

from typing import TYPE_CHECKING, Any

from edgemqtt.address import BrokerAddress
from edgemqtt.client import Message, MessageHandler, MqttClient
from edgemqtt.connection import Will
from edgemqtt.errors import (
    BadUsernameOrPassword,
    BrokerUnavailable,
    ConnectionRefused,
    InvalidBrokerAddress,
    InvalidBrokerUrl,
    InvalidTlsFiles,
    MqttError,
    NotAuthorised,
    ProtocolViolation,
    SubscriptionRefused,
    TlsRefused,
)

if TYPE_CHECKING:
    from edgemqtt.broker import BrokerLimits, EmbeddedBroker, embedded_broker, hash_password, password_entry

__all__ = [
    "BadUsernameOrPassword",
    "BrokerAddress",
    "BrokerLimits",
    "BrokerUnavailable",
    "ConnectionRefused",
    "EmbeddedBroker",
    "InvalidBrokerAddress",
    "InvalidBrokerUrl",
    "InvalidTlsFiles",
    "Message",
    "MessageHandler",
    "MqttClient",
    "MqttError",
    "NotAuthorised",
    "ProtocolViolation",
    "SubscriptionRefused",
    "TlsRefused",
    "Will",
    "embedded_broker",
    "hash_password",
    "password_entry",
]

_BROKER_NAMES = ("BrokerLimits", "EmbeddedBroker", "embedded_broker", "hash_password", "password_entry")


def __getattr__(name: str) -> Any:
    # The broker loads on first use: every client imports this package, and a node's start-up
    # should not pay for a broker it does not run.
    if name in _BROKER_NAMES:
        from edgemqtt import broker

        return getattr(broker, name)
    raise AttributeError(f"module 'edgemqtt' has no attribute {name!r}")
