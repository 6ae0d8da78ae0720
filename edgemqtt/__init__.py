"""edgetwin's MQTT 3.1.1 transport: an asyncio client, an embedded broker and the wire format.

It is the bottom layer of edgetwin and imports nothing of it.

WHY-PLACEHOLDER
"""

from edgemqtt.address import BrokerAddress
from edgemqtt.broker import BrokerLimits, EmbeddedBroker, embedded_broker, hash_password, password_entry
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
