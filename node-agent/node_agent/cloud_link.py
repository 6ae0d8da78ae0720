"""The edge end of the cloud link (docs/cloud-link.md): a node's MQTT session with the cloud broker.

``CloudLink`` is a piece of the gateway. It logs in as the node (user name = node name, password
derived from the join token), says hello on every connect, applies the sync that answers its latest
hello and every device change after it (through ``TwinService.apply_assignments``), sends what the
node owes (``node_agent.uplink``, ``node_agent.outbox``) and heartbeats.

It never holds the twin up: with the cloud unreachable, or refusing the node's login (logged once,
tried again every ``refused_delay`` seconds), the twin goes on serving apps and mappers from the
node's own store, and the outbox keeps what the cloud is owed until it is back. On a node that runs
pods, a ``PodLink`` (``node_agent.pod_link``) carries the pods' part of the hello and the sync, the
``down/pod`` and ``down/logs`` messages, and the pods' statuses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edgemqtt.client import Message, MqttClient, Will
from edgemqtt.errors import MqttError
from node_agent import node_status
from node_agent.device_changes import steps
from node_agent.hello import REVISION_ANNOTATION, SentHello, make_hello
from node_agent.metrics import NodeMetrics
from node_agent.outbox import Outbox
from node_agent.settings import CloudSettings
from node_agent.uplink import Uplink
from twin.device_table import encode_device
from twin.engine import DeviceSchema, Version
from twin.errors import EdgetwinError, PermanentError
from twin.link import (
    LINK_PREFIX,
    Ack,
    DeviceAssignment,
    DeviceChange,
    Direction,
    Heartbeat,
    Listening,
    Sync,
    down_topic,
    node_password,
    parse_link_topic,
    read_sync,
    up_topic,
)
from twin.link_pods import LogRequest, PodChange
from twin.memory import release_free_memory
from twin.models import DeviceModel
from twin.registry import CompactAssignment
from twin.service import TwinService
from twin.wire import now_ms

if TYPE_CHECKING:
    from node_agent.pod_link import PodLink

__all__ = ["CloudLink", "CloudSettings"]

log = logging.getLogger(__name__)

#: Bytes of messages from the cloud after which the memory their reading took is given back to the
#: system once they are handled (a sync of 1,000 devices is ~1.8 MB, and many times that in objects
#: while it is read and applied).
_LARGE_MESSAGES = 256 * 1024


class CloudLink:
    def __init__(
        self,
        service: TwinService,
        settings: CloudSettings,
        data_dir: Path,
        metrics: NodeMetrics,
        *,
        pods: PodLink | None = None,
    ) -> None:
        self.service = service
        self.node = service.node
        self.settings = settings
        self.metrics = metrics
        self.outbox = Outbox(data_dir)
        self._loaded = False
        self.uplink = Uplink(service, self.outbox, self._publish, resend=settings.resend, metrics=metrics)
        metrics.outbox_depth = self.uplink.depth
        service.add_observer(self.uplink.changed)
        self.pods = pods
        if pods is not None:
            pods.attach(self._publish, self.outbox.next_seq)
        self._client: MqttClient | None = None
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._hello: SentHello | None = None
        self._connections = 0
        self._connected = asyncio.Event()
        self._synced = asyncio.Event()
        #: Set by a sync, and by a cloud-sync that has just begun listening (``down/listening``).
        self._hello_news = asyncio.Event()
        self._beat_now = asyncio.Event()
        #: Set once the first sync is applied (tests and the command line wait on it).
        self.synced_once = asyncio.Event()

    async def run(self) -> None:
        settings, metrics = self.settings, self.metrics
        if not self._loaded:
            # Here rather than at construction: the twin answers its first requests before this.
            self.outbox.load()
            self._loaded = True
        will = Heartbeat(sent_at=now_ms(), online=False).model_dump_json().encode()
        client = MqttClient(
            settings.broker.with_credentials(self.node, node_password(settings.token, self.node)),
            client_id=f"edgetwin-node-{self.node}",
            clean_session=False,
            on_message=self._queue.put_nowait,
            on_connect=self._on_connect,
            will=Will(up_topic(self.node, "heartbeat"), will, qos=1),
            refused_delay=settings.refused_delay,
            reconnect_delays=settings.reconnect_delays,
        )
        self._client = client
        metrics.connected.set_function(lambda: float(client.connected and self._synced.is_set()))
        # Only recorded here: the client subscribes when its connection has no session yet.
        await client.subscribe(f"{LINK_PREFIX}{self.node}/down/#", qos=1)
        log.info("cloud link: node=%s cloud=%s joining", self.node, settings.broker.url)
        try:
            async with asyncio.TaskGroup() as group:
                for name, job in (
                    ("receive", self._receive),
                    ("hello", self._hellos),
                    ("send", self.uplink.run),
                    ("heartbeat", self._heartbeats),
                    ("outbox", self.outbox.keep_saved),
                ):
                    group.create_task(job(), name=f"cloud link {name} of {self.node}")
                if self.pods is not None:
                    group.create_task(self.pods.run(), name=f"cloud link pods of {self.node}")
                await client.connect(retry=True)
        finally:
            self.uplink.link_down()
            if self.pods is not None:
                self.pods.link_down()
            self._synced.clear()
            await client.close()
            if self.outbox.unsaved:
                await self.outbox.save()

    # -- connection -------------------------------------------------------------------------------------

    def _on_connect(self, session_present: bool) -> None:
        log.info(
            "cloud link: node=%s cloud=%s connected session_present=%s",
            self.node,
            self.settings.broker.url,
            session_present,
        )
        self._connections += 1
        self.uplink.link_down()
        if self.pods is not None:
            self.pods.link_down()
        self._synced.clear()
        self._connected.set()
        self._beat_now.set()

    def _publish(self, topic: str, payload: bytes) -> bool:
        client = self._client
        if client is None or not client.connected:
            return False
        try:
            client.publish(topic, payload, qos=1)
        except MqttError as exc:
            log.warning("cloud link: could not send on %s: %s", topic, exc)
            return False
        return True

    async def _hellos(self) -> None:
        """A hello after each connect, again every ``resend`` seconds until its sync arrives, and at
        once when a cloud-sync says it has begun listening (a hello sent before it did is lost)."""
        while True:
            await self._connected.wait()
            self._connected.clear()
            if self.pods is not None:
                await self.pods.ready()  # the hello names the stored pods: not before they are loaded
            while not self._synced.is_set() and self._send_hello():
                self._hello_news.clear()
                try:
                    async with asyncio.timeout(self.settings.resend):
                        await self._hello_news.wait()
                except TimeoutError:
                    log.info("cloud link: no sync for the hello; saying hello again")

    def _send_hello(self) -> bool:
        hello, body = make_hello(self.service, self._connections, self.pods)
        if not self._publish(up_topic(self.node, "hello"), body.model_dump_json().encode()):
            return False
        self._hello = hello
        self.metrics.sent.labels("hello").inc()
        return True

    async def _heartbeats(self) -> None:
        """A heartbeat at each connect and every ``heartbeat`` seconds while connected."""
        info = await asyncio.to_thread(node_status.node_info)
        if self.pods is not None:
            info = info.model_copy(update={"containerRuntimeVersion": self.pods.runtime_version})
        capacity = node_status.capacity()
        while True:
            client = self._client
            if client is not None and client.connected:
                sock = client.socket
                local = sock.getsockname()[0] if sock is not None else None
                beat = Heartbeat(
                    sent_at=now_ms(),
                    node_info=info,
                    addresses=node_status.addresses(local if isinstance(local, str) else None),
                    capacity=capacity,
                )
                if self._publish(up_topic(self.node, "heartbeat"), beat.model_dump_json().encode()):
                    self.metrics.sent.labels("heartbeat").inc()
            self._beat_now.clear()
            try:
                async with asyncio.timeout(self.settings.heartbeat):
                    await self._beat_now.wait()
            except TimeoutError:
                pass

    # -- down -------------------------------------------------------------------------------------------

    async def _receive(self) -> None:
        device_topic = down_topic(self.node, "device")
        held: Message | None = None
        while True:
            message = held if held is not None else await self._queue.get()
            held = None
            run = [message]
            if message.topic != device_topic:
                await self._guarded(self._handle(message), message.topic)
            else:
                # Device changes that wait together are applied together (``node_agent.device_changes``).
                while not self._queue.empty():
                    following = self._queue.get_nowait()
                    if following.topic != device_topic:
                        held = following
                        break
                    run.append(following)
                await self._guarded(self._device_changes(run), device_topic)
            large = sum(len(m.payload) for m in run) >= _LARGE_MESSAGES
            del message, run
            if large:
                release_free_memory()

    async def _guarded(self, handling: Awaitable[None], topic: str) -> None:
        try:
            await handling
        except EdgetwinError as exc:
            log.error("cloud link: %s on %s could not be applied: %s", topic, self.node, exc)  # noqa: TRY400
        except Exception:  # one bad message never stops the link
            log.exception("cloud link: unexpected error handling %s", topic)

    async def _handle(self, message: Message) -> None:
        topic = parse_link_topic(message.topic)
        if topic is None or topic.node != self.node or topic.direction is not Direction.DOWN:
            log.warning("cloud link: %s is not one of this node's down topics: ignored", message.topic)
            self.metrics.refused.labels("unknown").inc()
            return
        kind = topic.kind
        try:
            if kind == "sync":
                self.metrics.received.labels(kind).inc()
                await self._sync(*read_sync(message.payload))
            elif kind == "device":
                await self._device_changes([message])
            elif kind == "ack":
                self.metrics.received.labels(kind).inc()
                ack = Ack.model_validate_json(message.payload)
                if ack.kind == "podstatus" and self.pods is not None:
                    self.pods.acknowledged(ack)
                else:
                    self.uplink.acknowledged(ack)
            elif kind == "listening":
                self.metrics.received.labels(kind).inc()
                listening = Listening.model_validate_json(message.payload)
                # A heartbeat sent before it listened was lost too: the Node would wait `heartbeat`.
                self._beat_now.set()
                if not self._synced.is_set() and self._hello is not None:
                    # The hello may have gone while no replica listened: it would wait `resend`.
                    log.info(
                        "cloud link: cloud-sync %s is listening; saying hello again", listening.replica[:80]
                    )
                    self._hello_news.set()
            elif kind in ("pod", "logs") and self.pods is not None:
                self.metrics.received.labels(kind).inc()
                if kind == "pod":
                    self.pods.change(PodChange.model_validate_json(message.payload))
                else:
                    self.pods.request_logs(LogRequest.model_validate_json(message.payload))
            else:
                log.warning("cloud link: down/%s is not a kind this node knows: ignored", kind[:40])
                self.metrics.refused.labels("unknown").inc()
        except ValidationError as exc:
            self._malformed(kind, exc)

    def _malformed(self, kind: str, exc: ValidationError) -> None:
        problems = [f"{'.'.join(map(str, e['loc'])) or '<body>'}: {e['msg']}" for e in exc.errors()[:3]]
        log.warning("cloud link: a malformed down/%s from the cloud, ignored: %s", kind, "; ".join(problems))
        self.metrics.refused.labels(kind).inc()

    async def _sync(self, sync: Sync, devices: list[bytes]) -> None:
        """Apply a sync (``devices``: its assignments as JSON, ``twin.link.read_sync``)."""
        hello = self._hello
        if hello is None or sync.hello != hello.id:
            log.info("cloud link: a sync for hello %s, not the latest: ignored", sync.hello[:40])
            return
        # Read one at a time, each kept only as what the twin needs (``CompactAssignment``).
        assigned = self._assignments(DeviceAssignment.model_validate_json(d) for d in devices)
        del devices
        removed = [d for d in sync.removed if d in self.service.devices]
        await self._apply(assigned, removed)
        for device_id in removed:
            self.uplink.forget(device_id)
        if self.pods is not None:
            self.pods.synced(sync)
        # A device the sync does not list is one whose desired values the cloud holds no newer than
        # the node: that acknowledges nothing (an edge value may still be on its way up).
        for assignment in assigned:
            self.outbox.cloud_holds(assignment.device_id, _pairs(assignment))
        self.outbox.keep_only(set(self.service.devices))
        if self._hello is not hello or self._connections != hello.connection:
            return  # a new connection came while this was applied: its own hello and sync follow
        self.metrics.sync_seconds.observe(asyncio.get_running_loop().time() - hello.at)
        log.info(
            "cloud link: node=%s synced devices=%d changed=%d removed=%d",
            self.node,
            len(self.service.devices),
            len(assigned),
            len(removed),
        )
        self._synced.set()
        self._hello_news.set()
        self.synced_once.set()
        self.uplink.link_up()
        if self.pods is not None:
            self.pods.link_up()

    async def _device_changes(self, messages: list[Message]) -> None:
        """``down/device`` messages, in arrival order, applied in as few steps as keep their meaning."""
        changes = []
        for message in messages:
            self.metrics.received.labels("device").inc()
            try:
                change = DeviceChange.model_validate_json(message.payload)
            except ValidationError as exc:
                self._malformed("device", exc)
                continue
            if (change.op == "upsert" and change.assignment is None) or (
                change.op == "delete" and not change.id
            ):
                missing = "assignment" if change.op == "upsert" else "id"
                log.warning("cloud link: a down/device %s without its %s: ignored", change.op, missing)
                self.metrics.refused.labels("device").inc()
                continue
            changes.append(change)
        for step in steps(changes):
            # An upsert followed by a delete of the same device in one step: the delete stands.
            assigned = self._assignments([a for i, a in step.upserts.items() if i not in step.deletes])
            removed = [d for d in step.deletes if d in self.service.devices]
            # The cloud holds what it sent, marked before the twin changes: the uplink, woken by the
            # change while the twin stores it, must not take the cloud's own value for an edge one.
            for assignment in assigned:
                self.outbox.cloud_holds_some(assignment.device_id, _pairs(assignment))
            if assigned or removed:
                await self._apply(assigned, removed)
            for device_id in removed:
                self.uplink.forget(device_id)

    def _assignments(self, devices: Iterable[DeviceAssignment]) -> list[CompactAssignment]:
        """The assignments the twin can serve; each one it cannot is logged and left out."""
        result = []
        held = self.service.held()
        models: dict[str, DeviceModel] = {}
        for assignment in devices:
            device, model = assignment.device, assignment.model
            try:
                if device.model_key != model.key:
                    raise PermanentError(f"it names DeviceModel {device.model_key}; {model.key} came with it")
                DeviceSchema.build(device, model)
            except PermanentError as exc:
                reason = f"the cloud assigned device {device.id}, which cannot be served: {exc}"
                log.error("cloud link: %s", reason)  # noqa: TRY400
                self.metrics.refused.labels("assignment").inc()
                continue
            desired = {n: (d.value, Version(d.cloud, d.edge)) for n, d in assignment.desired.items()}
            generation = assignment.generation
            if device.id in held and generation < held[device.id][0]:
                # An older definition arriving late: keep the newer one, take only its desired values
                # (their versions say whether they are newer).
                current = self.service.devices[device.id]
                current_json = self.service.devices.json(device.id)
                current_model = self.service.models[current.model_key]
                result.append(CompactAssignment(device.id, current_json, current_model, desired))
                continue
            # Every device of a sync comes with its DeviceModel: equal ones are kept once.
            known = models.get(model.key)
            if known is not None and known == model:
                model = known
            models[model.key] = model
            # The node keeps the generation and the cloud's opaque revision with the device, and
            # names both in its hellos.
            annotations = {**device.metadata.annotations, REVISION_ANNOTATION: assignment.revision}
            meta = device.metadata.model_copy(update={"generation": generation, "annotations": annotations})
            json = encode_device(device.model_copy(update={"metadata": meta}))
            result.append(CompactAssignment(device.id, json, model, desired))
        return result

    async def _apply(self, assigned: list[CompactAssignment], removed: list[str]) -> None:
        try:
            await self.service.apply_assignments(assigned, removed)
        except PermanentError as exc:
            # One device the twin refuses must not keep the others out: apply them one at a time.
            reason = f"applying {len(assigned)} devices failed ({exc}); applying them one by one"
            log.error("cloud link: %s", reason)  # noqa: TRY400
            for assignment in assigned:
                try:
                    await self.service.apply_assignments([assignment])
                except PermanentError as one:
                    log.error("cloud link: device %s cannot be served: %s", assignment.device_id, one)  # noqa: TRY400
            await self.service.apply_assignments([], removed)


def _pairs(assignment: CompactAssignment) -> dict[str, tuple[int, int]]:
    return {name: (version.cloud, version.edge) for name, (_, version) in assignment.desired.items()}
