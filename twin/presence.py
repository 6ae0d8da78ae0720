"""Which twin services share a broker: each node keeps a retained presence message there.

Several nodes may use one broker (tests, small sites). A request names only a device, not a node,
so every twin service on the broker receives it. A node alone on its broker answers a request for
a device it does not have with 404, as KubeEdge does; once it sees another node's presence it stays
silent on devices it does not have, and the node that owns the device answers alone.

The message is retained on ``$hw/events/node/{node}/edgetwin/presence``; stopping clears it (an
empty retained message), and so does the broker when a node dies, through the connection's will.
"""

from __future__ import annotations

import logging

import orjson

from edgemqtt import Will
from edgemqtt.client import Message, MqttClient
from twin.topics import NODE_PREFIX
from twin.wire import now_ms

__all__ = ["Presence", "presence_topic"]

log = logging.getLogger(__name__)

_SUFFIX = "/edgetwin/presence"


def presence_topic(node: str) -> str:
    return f"{NODE_PREFIX}{node}{_SUFFIX}"


class Presence:
    """This node's presence on its broker, and the other nodes seen there."""

    def __init__(self, node: str, mqtt: MqttClient) -> None:
        self.node = node
        self._mqtt = mqtt
        self.peers: set[str] = set()

    @property
    def shared(self) -> bool:
        """Whether other twin services use this broker."""
        return bool(self.peers)

    @staticmethod
    def will(node: str) -> Will:
        """The will that clears ``node``'s presence when its connection dies."""
        return Will(presence_topic(node), b"", qos=1, retain=True)

    @staticmethod
    def filters() -> list[str]:
        return [f"{NODE_PREFIX}+{_SUFFIX}"]

    def announce(self) -> None:
        body = orjson.dumps({"node": self.node, "timestamp": now_ms()})
        self._mqtt.publish(presence_topic(self.node), body, qos=1, retain=True)

    def withdraw(self) -> None:
        if self._mqtt.connected:
            self._mqtt.publish(presence_topic(self.node), b"", qos=1, retain=True)

    @staticmethod
    def node_of(message: Message) -> str | None:
        """The node a presence message is about; ``None`` if ``message`` is something else."""
        topic = message.topic
        if not (topic.startswith(NODE_PREFIX) and topic.endswith(_SUFFIX)):
            return None
        node = topic[len(NODE_PREFIX) : -len(_SUFFIX)]
        return node if node and "/" not in node else None

    def observe(self, message: Message) -> bool:
        """Take in a presence message; ``False`` if ``message`` is something else."""
        topic = message.topic
        if not (topic.startswith(NODE_PREFIX) and topic.endswith(_SUFFIX)):
            return False
        node = self.node_of(message)
        if node is None or node == self.node:
            return True
        if message.payload:
            if node not in self.peers:
                log.info(
                    "node %s shares this broker: node %s now answers only for its own devices",
                    node,
                    self.node,
                )
            self.peers.add(node)
        elif node in self.peers:
            self.peers.discard(node)
            if not self.peers:
                log.info("node %s alone on its broker again: unknown devices get 404", self.node)
        return True
