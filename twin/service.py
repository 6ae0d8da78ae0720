"""The twin service: KubeEdge's edge MQTT API (DESIGN.md §4) in front of the engine and the store.

It answers ``twin/update`` (and ``twin/cloud_updated``), ``twin/get``, ``state/update`` and
``membership/get`` for the devices of one node, and publishes ``update/result``, then
``update/document``, then ``update/delta`` after each accepted update. Requests are handled one at
a time in arrival order, so updates to a device never overtake each other. A bad request gets an
error result on the matching result topic and nothing stored changes; the service goes on
serving everyone else. Where its replies differ from KubeEdge's, docs/twin.md says how and why.

Several nodes may share one broker. Each announces itself with a retained presence message
(``presence``); a node that sees others answers only for its own devices and stays silent on
unknown ones, since another node may own them. Alone on its broker it answers 404, as KubeEdge does.

In-process sources of reported values and states (the node agent's DMI server for KubeEdge
mapper-framework mappers) use ``report`` and ``report_state``: the same handlers as the MQTT
requests, queued in the same order, with the same results and events on the MQTT topics.
``add_definitions_observer`` tells them when the node's devices are added, changed or removed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edgemqtt.client import BrokerAddress, Message, MqttClient
from twin._transport import translate_mqtt_errors
from twin.device_table import DeviceTable
from twin.engine import DeviceSchema, DeviceTwin, UpdateOutcome, Version
from twin.errors import InvalidPayload, PermanentError
from twin.manifests import Manifests
from twin.memory import LARGE_BODY, release_free_memory
from twin.models import Device, DeviceModel
from twin.observers import DefinitionsChange, DefinitionsObserver, TwinChange, TwinObserver, change_of
from twin.presence import Presence
from twin.registry import Assignment, CompactAssignment, NodeDevices, Redefined
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
from twin.wire import (
    DEFAULT_MAX_PAYLOAD,
    DEVICE_STATES,
    MembershipGet,
    StateUpdate,
    TwinGet,
    TwinUpdate,
    WireProperty,
    WireValue,
    decode,
    encode_delta,
    encode_document,
    encode_error,
    encode_membership,
    encode_membership_updated,
    encode_state_result,
    encode_twin_result,
    now_ms,
    peek_event_id,
)

__all__ = ["TwinService"]

log = logging.getLogger(__name__)


class TwinService:
    """The device twins of one node, served over MQTT.

    ``await service.start(manifests)`` loads what the store holds plus the given manifests and
    connects; ``await service.serve()`` answers requests until cancelled (its host runs it in a
    TaskGroup); ``await service.stop()`` flushes and disconnects. ``run()`` does all three.
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
        self.registry = NodeDevices(node, store)
        # MQTT requests and in-process ones (``report``, ``report_state``) share one queue: one order.
        self._queue: asyncio.Queue[Message | _LocalRequest] = asyncio.Queue()
        # The will clears this node's presence if it dies without stopping (Presence).
        self._mqtt = MqttClient(
            broker, client_id=f"edgetwin-twin-{node}", on_message=self._on_message, will=Presence.will(node)
        )
        self.presence = Presence(node, self._mqtt)
        self.ready = asyncio.Event()
        self._observers: list[TwinObserver] = []
        self._definitions_observers: list[DefinitionsObserver] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def run(self, manifests: Manifests | None = None) -> None:
        await self.start(manifests)
        try:
            await self.serve()
        finally:
            await self.stop()

    async def start(self, manifests: Manifests | None = None) -> None:
        # Loading a thousand devices makes hundreds of thousands of objects, all of them kept: the
        # collector would walk them again and again for nothing (a third of the start-up time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            models, stored = self.registry.load()
            devices: Mapping[str, Device] = stored
            # Given manifests replace what is stored; without them the store is the truth, twins
            # included: a stored Device's desired values are not written again (its twin may hold
            # newer ones, set at the edge or by the cloud, each with its versions).
            if manifests is not None:
                models, devices = manifests.models, manifests.devices
            await self.registry.define(dict(models), devices, manifest_desired=manifests is not None)
        finally:
            if collecting:
                gc.enable()
        with translate_mqtt_errors():
            await self._mqtt.connect()
            await self._mqtt.subscribe(
                *request_filters(), membership_topic(self.node, "get"), *self.presence.filters()
            )
        self.presence.announce()
        # Definitions and twins live as long as the service: move them out of the collector's sight,
        # which removes 10-60 ms collection pauses with a thousand devices (objects are still freed
        # by reference counting).
        gc.freeze()
        release_free_memory()  # what reading the store left with the allocator: MBs for 1,000 devices
        log.info("twin service for node %s on %s: %d devices", self.node, self.broker.url, len(self.devices))

    async def stop(self) -> None:
        self.ready.clear()
        self.presence.withdraw()
        await self._mqtt.close()
        await self.store.flush()

    # -- definitions --------------------------------------------------------------------------------

    @property
    def models(self) -> dict[str, DeviceModel]:
        return self.registry.models

    @property
    def devices(self) -> DeviceTable:
        """The node's Devices (a read-only mapping; each read builds the ``Device`` from its JSON)."""
        return self.registry.devices

    @property
    def twins(self) -> dict[str, DeviceTwin]:
        return self.registry.twins

    async def set_definitions(self, manifests: Manifests) -> None:
        """Replace the node's devices and models (e.g. after a manifest change)."""
        self._announce(await self.registry.define(dict(manifests.models), dict(manifests.devices)))

    async def apply_assignments(
        self,
        assigned: Sequence[Assignment | CompactAssignment],
        removed: Iterable[str] = (),
        *,
        complete: bool = False,
    ) -> None:
        """Devices the cloud assigns to this node (new or changed) and takes away (``NodeDevices.assign``).

        Desired values that lost a race with a local write are told to observers as edge changes,
        so that the cloud link sends the node's values up again.
        """
        result = await self.registry.assign(assigned, removed, complete=complete)
        self._announce(result)
        for device_id, changes in result.desired.items():
            if changes:
                self._publish_events(device_id, "", UpdateOutcome(changes))
                self._notify(
                    device_id, TwinChange(desired=frozenset(c.name for c in changes), origin="cloud")
                )
        for device_id, names in result.lost.items():
            self._notify(device_id, TwinChange(desired=frozenset(names), origin="edge"))

    def held(self) -> dict[str, tuple[int, dict[str, Version]]]:
        """What a cloud link announces: per device its ``metadata.generation`` and desired versions."""
        return self.registry.held()

    def add_observer(self, observer: TwinObserver) -> None:
        """Call ``observer(device_id, change)`` after every change of a twin (the cloud link's hook)."""
        self._observers.append(observer)

    def add_definitions_observer(self, observer: DefinitionsObserver) -> None:
        """Call ``observer(change)`` after the node's definitions were set: devices added, changed or
        removed (``change``), DeviceModels perhaps changed (``models``)."""
        self._definitions_observers.append(observer)

    def _notify(self, device_id: str, change: TwinChange) -> None:
        for observer in self._observers:
            try:
                observer(device_id, change)
            except Exception:  # an observer's bug must not cost the twin a request
                log.exception("a twin observer failed for %s", device_id)

    def _announce(self, result: Redefined) -> None:
        for device_id, outcome in result.outcomes.items():
            if outcome.changed:
                self._publish_events(device_id, "", outcome)
        if result.added or result.removed:
            body = encode_membership_updated(
                (self.registry.member(i) for i in result.added),
                [{"id": d.id, "name": d.metadata.name} for d in result.removed],
            )
            self._mqtt.publish(membership_topic(self.node, "updated"), body, qos=1)
            if len(body) >= LARGE_BODY:
                release_free_memory()
        if not self._definitions_observers:
            return  # the added Devices are built only for someone who looks at them
        change = DefinitionsChange(tuple(self.devices[i] for i in result.added), tuple(result.removed))
        for observer in self._definitions_observers:
            try:
                observer(change)
            except Exception:  # an observer's bug must not cost the node its definitions
                log.exception("a definitions observer failed")

    # -- in-process requests ---------------------------------------------------------------------------

    async def report(self, device_id: str, reported: Mapping[str, str]) -> None:
        """Reported values of a device (``namespace/name``), handled as a ``twin/update`` from a mapper.

        ``PermanentError`` (``UnknownDevice``, ``InvalidValue``...) if refused; the refusal is also
        published on the result topic, as for an MQTT request.
        """
        request = TwinUpdate(
            twin={name: WireProperty(actual=WireValue(value=v)) for name, v in reported.items()}
        )
        await self._local(DeviceTopic(device_id, Action.TWIN_UPDATE, legacy=False), request)

    async def report_state(self, device_id: str, state: str) -> None:
        """A device's state (``online``, ``offline``, ``unknown``...), as a mapper's ``state/update``."""
        await self._local(DeviceTopic(device_id, Action.STATE_UPDATE, legacy=False), StateUpdate(state=state))

    async def _local(self, topic: DeviceTopic, request: TwinUpdate | StateUpdate) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_LocalRequest(topic, request, done))
        await done

    async def _handle_local(self, local: _LocalRequest) -> None:
        try:
            if isinstance(local.request, TwinUpdate):
                await self._twin_update(local.topic, local.request)
            else:
                await self._state_update(local.topic, local.request)
        except Exception as exc:  # handed to the caller: it never stops the service
            if isinstance(exc, PermanentError):
                self._refuse(local.topic, local.request.event_id, exc)
            else:
                log.exception("unexpected error handling an in-process request for %s", local.topic.device_id)
            if not local.done.done():  # the caller may have given up waiting
                local.done.set_exception(exc)
        else:
            if not local.done.done():
                local.done.set_result(None)

    # -- serving ------------------------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if self.presence.observe(message):
            return
        self._queue.put_nowait(message)

    async def serve(self) -> None:
        """Answer requests in arrival order until cancelled; one bad message never stops it."""
        self.ready.set()
        while True:
            message = await self._queue.get()
            if isinstance(message, _LocalRequest):
                await self._handle_local(message)
                continue
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
        if topic.device_id not in self.twins and self.presence.shared:
            return  # another node on this broker may own it: only the owner answers
        try:
            if topic.action in (Action.TWIN_UPDATE, Action.TWIN_CLOUD_UPDATED):
                # The body is read before the device is looked up, as KubeEdge does: bad JSON is a
                # 400 whatever the device.
                await self._twin_update(topic, decode(TwinUpdate, message.payload, max_size=self.max_payload))
            elif topic.action == Action.TWIN_GET:
                self._twin_get(topic, message.payload)
            elif topic.action == Action.STATE_UPDATE:
                await self._state_update(
                    topic, decode(StateUpdate, message.payload, max_size=self.max_payload)
                )
        except PermanentError as exc:
            self._refuse(topic, peek_event_id(message.payload), exc)

    def _refuse(self, topic: DeviceTopic, event_id: str, exc: PermanentError) -> None:
        log.info("refused %s for %s: %s", topic.action.value, topic.device_id, exc)
        self._mqtt.publish(
            topic.reply(topic.action.result), encode_error(event_id, exc.code, str(exc)), qos=1
        )

    def _reply_internal_error(self, message: Message) -> None:
        topic = parse_device_topic(message.topic)
        if topic is not None:
            self._mqtt.publish(
                topic.reply(topic.action.result),
                encode_error(peek_event_id(message.payload), 500, "internal error; see the twin service log"),
                qos=1,
            )

    def _twin_of(self, device_id: str) -> tuple[DeviceTwin, DeviceSchema]:
        return self.registry.twin_of(device_id)

    async def _twin_update(self, topic: DeviceTopic, request: TwinUpdate) -> None:
        twin, schema = self._twin_of(topic.device_id)
        if topic.action is Action.TWIN_CLOUD_UPDATED:
            outcome = twin.apply_cloud_update(request, schema, now_ms())
        else:
            outcome = twin.apply_edge_update(request, schema, now_ms())
        if outcome.changed:
            # Desired values are durable before the result goes out; reported ones are written behind.
            desired = any(w is not None and w.expected is not None for w in request.twin.values())
            await self.store.save_twin(twin, durable=desired)
        self._mqtt.publish(
            topic.reply(Action.TWIN_UPDATE_RESULT),
            encode_twin_result(request.event_id, {c.name: c.current.to_wire() for c in outcome.changes}),
            qos=1,
        )
        self._publish_events(topic.device_id, request.event_id, outcome)
        if outcome.changed:
            self._notify(topic.device_id, change_of(request, outcome, topic.action))

    def _publish_events(self, device_id: str, event_id: str, outcome: UpdateOutcome) -> None:
        twin, schema = self.registry.twin_of(device_id)
        if outcome.changed:
            document = encode_document(
                event_id,
                now_ms(),
                (
                    (c.name, c.last.to_wire() if c.last is not None else None, c.current.to_wire())
                    for c in outcome.changes
                ),
            )
            for target in event_topics(
                device_id, Action.TWIN_UPDATE_DOCUMENT, legacy_topics=self.legacy_topics
            ):
                self._mqtt.publish(target, document, qos=1)
        pending = twin.delta(schema)
        if pending:
            delta = encode_delta(twin.desired_properties(), pending)
            for target in event_topics(device_id, Action.TWIN_UPDATE_DELTA, legacy_topics=self.legacy_topics):
                self._mqtt.publish(target, delta, qos=1)

    def _twin_get(self, topic: DeviceTopic, payload: bytes) -> None:
        # An empty body is answered (KubeEdge refuses it): `mosquitto_pub -n` is how people try it.
        event_id = decode(TwinGet, payload, max_size=self.max_payload).event_id if payload.strip() else ""
        twin, _ = self._twin_of(topic.device_id)
        result = encode_twin_result(event_id, twin.wire(), state=twin.state, last_online=twin.last_online)
        self._mqtt.publish(topic.reply(Action.TWIN_GET_RESULT), result, qos=1)

    async def _state_update(self, topic: DeviceTopic, request: StateUpdate) -> None:
        twin, _ = self._twin_of(topic.device_id)
        state = request.state.lower()
        if state not in DEVICE_STATES:
            raise InvalidPayload(f"state {request.state[:40]!r} is not one of {', '.join(DEVICE_STATES)}")
        if state in ("online", "ok"):
            twin.last_online = _iso_now()
        twin.state = state
        await self.store.save_twin(twin, durable=False)
        self._notify(topic.device_id, TwinChange(state=True))
        self._mqtt.publish(
            topic.reply(Action.STATE_UPDATE_RESULT),
            encode_state_result(split_device_id(topic.device_id)[1], twin.state, twin.last_online),
            qos=1,
        )

    def _membership_get(self, payload: bytes) -> None:
        result_topic = membership_topic(self.node, "get/result")
        try:
            # An empty body is answered, as for twin/get.
            event_id = (
                decode(MembershipGet, payload, max_size=self.max_payload).event_id if payload.strip() else ""
            )
        except PermanentError as exc:
            self._mqtt.publish(result_topic, encode_error(peek_event_id(payload), exc.code, str(exc)), qos=1)
            return
        # A generator: each member body is encoded and let go before the next is made.
        members = (self.registry.member(i) for i in sorted(self.devices))
        body = encode_membership(event_id, members)
        self._mqtt.publish(result_topic, body, qos=1)
        if len(body) >= LARGE_BODY:
            release_free_memory()  # the member bodies' blocks, freed among the allocator's kept ones


@dataclass
class _LocalRequest:
    """An in-process request waiting in the service's queue; ``done`` resolves once it is handled."""

    topic: DeviceTopic
    request: TwinUpdate | StateUpdate
    done: asyncio.Future[None] = field(repr=False)


def _iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
