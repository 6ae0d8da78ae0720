"""The twin service: KubeEdge's edge MQTT API (DESIGN.md §4) in front of the engine and the store.

It answers ``twin/update``, ``twin/get``, ``state/update`` and ``membership/get`` for the devices of
one node, and publishes ``update/result``, then ``update/document``, then ``update/delta`` after each
accepted update. Requests are handled one at a time in arrival order, so updates to a device never
overtake each other. A bad request gets an error result on the matching result topic and nothing
stored changes; the service goes on serving everyone else.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime
from typing import Any

from edgemqtt.client import BrokerAddress, Message, MqttClient
from twin._transport import translate_mqtt_errors
from twin.codec import (
    DEFAULT_MAX_PAYLOAD,
    DEVICE_STATES,
    GetRequest,
    MembershipRequest,
    StateUpdateRequest,
    TwinUpdateRequest,
    decode,
    encode,
    error_body,
    now_ms,
    peek_event_id,
)
from twin.engine import DeviceSchema, DeviceTwin, UpdateOutcome
from twin.errors import EdgetwinError, InvalidPayload, PermanentError, UnknownDevice
from twin.manifests import Manifests, check_consistency
from twin.models import Device, DeviceModel
from twin.store import TwinStore
from twin.topics import (
    Action,
    DeviceTopic,
    event_topics,
    membership_topic,
    parse_device_topic,
    request_filters,
    split_device_id,
)

__all__ = ["TwinService"]

log = logging.getLogger(__name__)


class TwinService:
    """The device twins of one node, served over MQTT.

    ``await service.start(manifests)`` loads what the store holds plus the given manifests and
    starts serving; ``await service.stop()`` flushes and disconnects. ``run()`` does both around
    waiting forever, for use in a TaskGroup.
    """

    def __init__(
        self,
        node: str,
        broker: BrokerAddress,
        store: TwinStore,
        *,
        legacy_topics: bool = True,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.node = node
        self.broker = broker
        self.store = store
        self.legacy_topics = legacy_topics
        self.max_payload = max_payload
        self.models: dict[str, DeviceModel] = {}
        self.devices: dict[str, Device] = {}
        self.twins: dict[str, DeviceTwin] = {}
        self._schemas: dict[str, DeviceSchema] = {}
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._mqtt = MqttClient(broker, client_id=f"edgetwin-twin-{node}", on_message=self._queue.put_nowait)
        self._worker: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self, manifests: Manifests | None = None) -> None:
        await self.start(manifests)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self, manifests: Manifests | None = None) -> None:
        stored = self.store.load()
        self.twins = stored.twins
        # Given manifests replace what is stored; without them the store is the truth.
        source = Manifests(stored.models, stored.devices) if manifests is None else manifests
        await self._apply_definitions(dict(source.models), dict(source.devices), announce=False)
        with translate_mqtt_errors():
            await self._mqtt.connect()
            await self._mqtt.subscribe(*request_filters(), membership_topic(self.node, "get"))
        # Definitions and twins live as long as the service: move them out of the collector's sight,
        # which removes 10-60 ms collection pauses with a thousand devices (objects are still freed
        # by reference counting).
        gc.freeze()
        self._worker = asyncio.create_task(self._serve(), name=f"twin service {self.node}")
        log.info("twin service for node %s on %s: %d devices", self.node, self.broker.url, len(self.devices))
        self.ready.set()

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await self._mqtt.close()
        await self.store.flush()

    # -- definitions --------------------------------------------------------------------------------

    async def set_definitions(self, manifests: Manifests) -> None:
        """Replace the node's devices and models (e.g. after a manifest change)."""
        await self._apply_definitions(dict(manifests.models), dict(manifests.devices), announce=True)

    async def _apply_definitions(
        self, models: dict[str, DeviceModel], devices: dict[str, Device], *, announce: bool
    ) -> None:
        check_consistency(Manifests(models, devices))
        mine = {i: d for i, d in devices.items() if d.spec.nodeName in ("", self.node)}
        for device_id in sorted(set(devices) - set(mine)):
            log.info(
                "device %s belongs to node %s, not %s", device_id, devices[device_id].spec.nodeName, self.node
            )
        schemas = {i: DeviceSchema.build(d, models[d.model_key]) for i, d in mine.items()}
        removed = [self.devices[i] for i in self.devices if i not in mine]
        added = [d for i, d in mine.items() if self.devices.get(i) != d]
        now = now_ms()
        outcomes: dict[str, UpdateOutcome] = {}
        for device_id, device in mine.items():
            twin = self.twins.setdefault(device_id, DeviceTwin(device_id))
            outcomes[device_id] = twin.sync_definition(device, schemas[device_id], now)
        for device_id in list(self.twins):
            if device_id not in mine:
                del self.twins[device_id]
                await self.store.delete_twin(device_id)
        self.models, self.devices, self._schemas = models, mine, schemas
        await self.store.save_definitions(models, mine)
        for device_id, outcome in outcomes.items():
            if outcome.changed:
                await self.store.save_twin(self.twins[device_id], durable=True)
                if announce:
                    self._publish_events(device_id, "", outcome)
        if announce and (added or removed):
            self._mqtt.publish(
                membership_topic(self.node, "updated"),
                encode(
                    {
                        "event_id": "",
                        "timestamp": now_ms(),
                        "added_devices": [self._member(d) for d in added],
                        "removed_devices": [{"id": d.id, "name": d.metadata.name} for d in removed],
                    }
                ),
                qos=1,
            )

    # -- serving ------------------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("unexpected error handling a message on %s", message.topic)
                self._reply_internal_error(message)

    async def _handle(self, message: Message) -> None:
        topic = parse_device_topic(message.topic)
        if topic is None:
            if message.topic == membership_topic(self.node, "get"):
                self._membership_get(message.payload)
            return
        try:
            if topic.action == Action.TWIN_UPDATE:
                await self._twin_update(topic, message.payload)
            elif topic.action == Action.TWIN_GET:
                self._twin_get(topic, message.payload)
            elif topic.action == Action.STATE_UPDATE:
                await self._state_update(topic, message.payload)
        except PermanentError as exc:
            log.info("refused %s for %s: %s", topic.action.value, topic.device_id, exc)
            self._mqtt.publish(
                topic.reply(topic.action.result),
                error_body(peek_event_id(message.payload), exc.code, str(exc)),
                qos=1,
            )

    def _reply(self, topic: str, event_id: str, **body: Any) -> None:
        """Publish a result: the request's event_id, a timestamp, and ``body``."""
        self._mqtt.publish(topic, encode({"event_id": event_id, "timestamp": now_ms(), **body}), qos=1)

    def _reply_internal_error(self, message: Message) -> None:
        topic = parse_device_topic(message.topic)
        if topic is not None:
            self._mqtt.publish(
                topic.reply(topic.action.result),
                error_body(peek_event_id(message.payload), 500, "internal error; see the twin service log"),
                qos=1,
            )

    def _twin_of(self, device_id: str) -> tuple[DeviceTwin, DeviceSchema]:
        twin = self.twins.get(device_id)
        schema = self._schemas.get(device_id)
        if twin is None or schema is None:
            raise UnknownDevice(f"device {device_id} is not known on node {self.node}")
        return twin, schema

    async def _twin_update(self, topic: DeviceTopic, payload: bytes) -> None:
        twin, schema = self._twin_of(topic.device_id)
        request = decode(TwinUpdateRequest, payload, max_size=self.max_payload)
        outcome = twin.apply_edge_update(request, schema, now_ms())
        desired = any(w is not None and w.expected is not None for w in request.twin.values())
        await self.store.save_twin(twin, durable=desired)
        self._reply(
            topic.reply(Action.TWIN_UPDATE_RESULT),
            request.event_id,
            twin={c.name: c.current.to_wire() for c in outcome.changes},
        )
        self._publish_events(topic.device_id, request.event_id, outcome)

    def _publish_events(self, device_id: str, event_id: str, outcome: UpdateOutcome) -> None:
        twin, schema = self.twins[device_id], self._schemas[device_id]
        stamp = now_ms()
        document = encode(
            {
                "event_id": event_id,
                "timestamp": stamp,
                "twin": {
                    c.name: {
                        "last": c.last.to_wire() if c.last is not None else None,
                        "current": c.current.to_wire(),
                    }
                    for c in outcome.changes
                },
            }
        )
        for target in event_topics(device_id, Action.TWIN_UPDATE_DOCUMENT, legacy_topics=self.legacy_topics):
            self._mqtt.publish(target, document, qos=1)
        pending = twin.delta(schema)
        if pending:
            delta = encode(
                {"event_id": event_id, "timestamp": stamp, "twin": twin.wire(pending), "delta": pending}
            )
            for target in event_topics(device_id, Action.TWIN_UPDATE_DELTA, legacy_topics=self.legacy_topics):
                self._mqtt.publish(target, delta, qos=1)

    def _twin_get(self, topic: DeviceTopic, payload: bytes) -> None:
        event_id = peek_event_id(payload)
        if payload.strip():
            event_id = decode(GetRequest, payload, max_size=self.max_payload).event_id
        twin, _ = self._twin_of(topic.device_id)
        self._reply(topic.reply(Action.TWIN_GET_RESULT), event_id, twin=twin.wire())

    async def _state_update(self, topic: DeviceTopic, payload: bytes) -> None:
        twin, _ = self._twin_of(topic.device_id)
        request = decode(StateUpdateRequest, payload, max_size=self.max_payload)
        state = request.state.lower()
        if state not in DEVICE_STATES:
            raise InvalidPayload(f"state {request.state[:40]!r} is not one of {', '.join(DEVICE_STATES)}")
        if state in ("online", "ok"):
            twin.last_online = _iso_now()
        twin.state = state
        await self.store.save_twin(twin, durable=False)
        self._reply(
            topic.reply(Action.STATE_UPDATE_RESULT),
            request.event_id,
            device={
                "name": split_device_id(topic.device_id)[1],
                "state": twin.state,
                "lastOnlineTime": twin.last_online,
            },
        )

    def _membership_get(self, payload: bytes) -> None:
        result_topic = membership_topic(self.node, "get/result")
        try:
            event_id = (
                decode(MembershipRequest, payload, max_size=self.max_payload).event_id
                if payload.strip()
                else ""
            )
        except EdgetwinError as exc:
            self._mqtt.publish(result_topic, error_body(peek_event_id(payload), exc.code, str(exc)), qos=1)
            return
        self._reply(
            result_topic, event_id, devices=[self._member(d) for _, d in sorted(self.devices.items())]
        )

    def _member(self, device: Device) -> dict[str, Any]:
        twin = self.twins.get(device.id)
        return {
            "id": device.id,
            "name": device.metadata.name,
            "state": twin.state if twin else "unknown",
            "last_online": twin.last_online if twin else "",
            # What a mapper needs to run the device; KubeEdge clients ignore unknown keys.
            "edgetwin": {
                "device": device.model_dump(mode="json"),
                "model": self.models[device.model_key].model_dump(mode="json"),
            },
        }


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
