"""edgetwin's MQTT 3.1.1 transport: an asyncio client, an embedded broker and the wire format.

It is the bottom layer of edgetwin and imports nothing of it.
"""

from edgemqtt.broker import EmbeddedBroker, embedded_broker
from edgemqtt.client import BrokerAddress, Message, MessageHandler, MqttClient
from edgemqtt.errors import BrokerUnavailable, MqttError, ProtocolViolation

__all__ = [
    "BrokerAddress",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "Message",
    "MessageHandler",
    "MqttClient",
    "MqttError",
    "ProtocolViolation",
    "embedded_broker",
]
