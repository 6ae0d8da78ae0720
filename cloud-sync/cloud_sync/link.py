"""cloud-sync's end of the cloud link: the up stream shared with the other replicas, and the down topics.

cloud-sync connects to the cloud broker as ``edgetwin-cloud`` and subscribes to
``$share/edgetwin-cloud-sync/edgetwin/v1/nodes/+/up/#`` at QoS 1, so each message from the nodes
goes to one replica (docs/cloud-link.md). Messages are decoded with ``twin.link``'s models and
handed, in arrival order, to the ``UpHandlers``; a message that is not one (bad JSON, a missing
field, a topic outside the link, a hello naming another node) is counted, logged once per node and
kind, and ignored. What goes down is published at QoS 1; while the broker is away the client keeps
it and sends it on reconnect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ValidationError

from cloud_sync.metrics import Metrics
from edgemqtt import BrokerAddress, Message, MqttClient, MqttError
from twin.link import (
    Direction,
    DownKind,
    EdgeDesired,
    Heartbeat,
    Hello,
    Report,
    down_topic,
    parse_link_topic,
)
from twin.link_pods import LogChunk, PodStatusReport, parse_reply_topic, reply_filter

__all__ = ["CLOUD_USER", "SHARED_GROUP", "UP_FILTER", "CloudLink", "UpHandlers"]

log = logging.getLogger(__name__)

CLOUD_USER = "edgetwin-cloud"
SHARED_GROUP = "edgetwin-cloud-sync"
UP_FILTER = f"$share/{SHARED_GROUP}/edgetwin/v1/nodes/+/up/#"
_MODELS: dict[str, type[BaseModel]] = {
    "hello": Hello,
    "report": Report,
    "desired": EdgeDesired,
    "heartbeat": Heartbeat,
    "podstatus": PodStatusReport,
}


class UpHandlers(Protocol):
    """What cloud-sync does with each kind of message; called in the loop, must not block."""

    def hello(self, node: str, message: Hello) -> None: ...
    def report(self, node: str, message: Report) -> None: ...
    def desired(self, node: str, message: EdgeDesired) -> None: ...
    def heartbeat(self, node: str, message: Heartbeat) -> None: ...
    def podstatus(self, node: str, message: PodStatusReport) -> None: ...
    def log_chunk(self, node: str, message: LogChunk) -> None: ...


class CloudLink:
    def __init__(
        self, address: BrokerAddress, metrics: Metrics, *, client_id: str, replica: str | None = None
    ) -> None:
        self.address = address
        #: Answers to this replica's own requests (pod logs) come on ``reply/{replica}``.
        self.replica = replica
        self.metrics = metrics
        self.client_id = client_id
        self.handlers: UpHandlers | None = None
        #: Called each time this replica has (again) subscribed to the up stream: what nodes sent
        #: while it was not subscribed is lost, so it tells them it listens (``down/listening``).
        self.on_listening: Callable[[], None] | None = None
        self.connected = asyncio.Event()
        self._client: MqttClient | None = None
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._bad: set[tuple[str, str]] = set()

    async def run(self) -> None:
        """Connect (retrying), subscribe to the up stream and hand its messages over, until cancelled."""
        subscribed = False

        def reconnected(_session_present: bool) -> None:
            # The client has sent its SUBSCRIBE again before this runs: nodes' answers come after it.
            if subscribed:
                self._listening()

        client = MqttClient(
            self.address,
            client_id=self.client_id,
            on_message=self._queue.put_nowait,
            clean_session=True,
            on_connect=reconnected,
        )
        await client.connect(retry=True)
        self._client = client
        try:
            await client.subscribe(UP_FILTER, qos=1)
            if self.replica is not None:
                await client.subscribe(reply_filter(self.replica), qos=1)
            subscribed = True
            log.info("cloud link up on %s (%s)", self.address.url, UP_FILTER)
            self.connected.set()
            self._listening()
            while True:
                self._dispatch(await self._queue.get())
        finally:
            self.connected.clear()
            self._client = None
            await client.close()

    def _listening(self) -> None:
        if self.on_listening is not None:
            self.on_listening()

    def send(self, node: str, kind: DownKind, message: BaseModel) -> None:
        client = self._client
        if client is None:
            log.debug("cloud link down; %s for %s not sent", kind, node)
            return
        try:
            client.publish(down_topic(node, kind), message.model_dump_json().encode(), qos=1)
        except MqttError as exc:
            log.warning("cannot send %s to %s: %s", kind, node, exc)
            return
        self.metrics.messages_out.labels(kind).inc()

    def _dispatch(self, message: Message) -> None:
        reply = parse_reply_topic(message.topic)
        if reply is not None:
            self._reply(reply[0], message)
            return
        topic = parse_link_topic(message.topic)
        if topic is None or topic.direction is not Direction.UP:
            self._refuse("?", message.topic[:100], f"a message on {message.topic[:200]!r}, not a link topic")
            return
        if topic.kind not in _MODELS:
            self._refuse(topic.node, topic.kind[:40], f"up/{topic.kind[:40]}, which is no kind of message")
            return
        node, kind = topic.node, topic.kind
        self.metrics.messages_in.labels(kind).inc()
        try:
            decoded = _MODELS[kind].model_validate_json(message.payload)
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:3]
            )
            self._refuse(node, kind, f"a malformed up/{kind} ({detail})")
            return
        if isinstance(decoded, Hello) and decoded.node != node:
            self._refuse(node, kind, f"a hello naming node {decoded.node[:80]!r}")
            return
        self._bad.discard((node, kind))
        handlers = self.handlers
        if handlers is None:
            return
        try:
            if isinstance(decoded, Hello):
                handlers.hello(node, decoded)
            elif isinstance(decoded, Report):
                handlers.report(node, decoded)
            elif isinstance(decoded, EdgeDesired):
                handlers.desired(node, decoded)
            elif isinstance(decoded, Heartbeat):
                handlers.heartbeat(node, decoded)
            elif isinstance(decoded, PodStatusReport):
                handlers.podstatus(node, decoded)
        except Exception:
            log.exception("handling up/%s from %s failed", kind, node)

    def _reply(self, node: str, message: Message) -> None:
        self.metrics.messages_in.labels("logs").inc()
        try:
            chunk = LogChunk.model_validate_json(message.payload)
        except ValidationError:
            self._refuse(node, "logs", "a malformed log chunk")
            return
        if self.handlers is not None:
            try:
                self.handlers.log_chunk(node, chunk)
            except Exception:
                log.exception("handling a log chunk from %s failed", node)

    def _refuse(self, node: str, kind: str, what: str) -> None:
        self.metrics.messages_invalid.labels(kind if kind in _MODELS else "other").inc()
        if (node, kind) in self._bad:
            log.debug("node %s sent %s; ignored", node, what)
            return
        self._bad.add((node, kind))
        log.warning("node %s sent %s; ignored (logged once until it sends a good one)", node, what)
