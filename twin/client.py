"""``TwinClient``: a small asyncio API for apps that read twins and set desired values.

What KubeEdge users ask for when they want a control loop without Go::

    async with TwinClient("mqtt://127.0.0.1:1883") as twins:
        state = await twins.get("default/thermostat")
        print(state["temperature"].reported)
        await twins.set_desired("default/thermostat", {"target": "21"})
        async for event in twins.watch("default/thermostat"):
            print(event.kind, event.device_id, event.delta)

Requests are matched to their results by ``event_id``; an error result raises ``UnknownDevice``
(404), ``VersionConflict`` (409) or ``RequestRefused`` (anything else) with the twin's reason.
Bodies are read and written only through ``twin.wire``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import orjson

from edgemqtt.client import BrokerAddress, Message, MqttClient
from twin._transport import translate_mqtt_errors
from twin.errors import InvalidPayload, RequestRefused, UnknownDevice, VersionConflict
from twin.presence import Presence
from twin.topics import DEVICE_PREFIX, Action, device_topic, full_device_id, membership_topic
from twin.wire import (
    MAX_MEMBERSHIP_PAYLOAD,
    Member,
    MembershipReply,
    Reply,
    StateReply,
    TwinDelta,
    TwinDocument,
    WireProperty,
    decode,
    encode_request,
    encode_update,
    now_ms,
    peek_event_id,
)

__all__ = ["DeviceView", "PropertyState", "TwinClient", "TwinEvent"]

_counter = itertools.count(1)

EventKind = Literal["document", "delta", "state"]


@dataclass(frozen=True)
class PropertyState:
    """One property as the twin holds it."""

    name: str
    desired: str | None
    reported: str | None
    desired_timestamp: int = 0
    reported_timestamp: int = 0
    type: str = "string"

    @classmethod
    def from_wire(cls, name: str, prop: WireProperty | None) -> PropertyState:
        if prop is None:
            return cls(name, None, None, type="deleted")
        expected, actual = prop.expected, prop.actual
        return cls(
            name=name,
            desired=(expected.value if expected is not None else None) or None,
            reported=(actual.value if actual is not None else None) or None,
            desired_timestamp=expected.metadata.timestamp if expected and expected.metadata else 0,
            reported_timestamp=actual.metadata.timestamp if actual and actual.metadata else 0,
            type=prop.metadata.type if prop.metadata is not None else "string",
        )


def _states(twin: Mapping[str, WireProperty | None]) -> dict[str, PropertyState]:
    return {name: PropertyState.from_wire(name, prop) for name, prop in twin.items()}


@dataclass(frozen=True)
class DeviceView:
    """A device's twin and state, as ``TwinClient.device`` reads them."""

    id: str
    state: str
    last_online: str
    properties: dict[str, PropertyState]


@dataclass(frozen=True)
class TwinEvent:
    """A document, delta or state change published by the twin."""

    kind: EventKind
    device_id: str
    #: The body as published (for printing it whole).
    body: dict[str, Any]
    #: For documents: each changed property's state after the change; for deltas: every property
    #: with a desired value.
    current: dict[str, PropertyState] = field(default_factory=dict)
    #: For deltas: the desired values the device has not reached yet.
    delta: dict[str, str] = field(default_factory=dict)
    #: For state changes: the device's new state and when it was last online.
    state: str = ""
    last_online: str = ""


_RESULTS = (Action.TWIN_UPDATE_RESULT, Action.TWIN_GET_RESULT)
_EVENTS: dict[EventKind, Action] = {
    "document": Action.TWIN_UPDATE_DOCUMENT,
    "delta": Action.TWIN_UPDATE_DELTA,
    "state": Action.STATE_UPDATE_RESULT,
}


def _raise_for(reply: Reply | MembershipReply, what: str) -> None:
    if reply.code is None or reply.code < 400:
        return
    reason = reply.reason or "no reason given"
    if reply.code == 404:
        raise UnknownDevice(reason)
    if reply.code == 409:
        raise VersionConflict(reason)
    raise RequestRefused(f"{what}: {reason}", reply.code)


class TwinClient:
    """An MQTT app's view of the twins on a gateway; use as an async context manager."""

    def __init__(
        self, broker: BrokerAddress | str, *, timeout: float = 5.0, client_id: str | None = None
    ) -> None:
        self.timeout = timeout
        self._prefix = f"app-{os.getpid()}-{next(_counter)}"
        self._mqtt = MqttClient(
            broker, client_id=client_id or f"edgetwin-{self._prefix}", on_message=self._route
        )
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._watchers: list[tuple[str | None, asyncio.Queue[TwinEvent]]] = []
        self._ids = itertools.count(1)
        self._nodes: set[str] = set()
        self._twin_seen = asyncio.Event()
        self._barrier_topic = f"edgetwin/v1/clients/{self._prefix}/barrier"

    async def __aenter__(self) -> Self:
        with translate_mqtt_errors():
            await self._mqtt.connect()
            await self._mqtt.subscribe(
                *(f"{DEVICE_PREFIX}+/+/{a.value}" for a in _RESULTS), *Presence.filters(), self._barrier_topic
            )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._mqtt.close()

    # -- requests -------------------------------------------------------------------------------

    async def get(self, device_id: str) -> dict[str, PropertyState]:
        """Every property of a device's twin."""
        return (await self.device(device_id)).properties

    async def device(self, device_id: str) -> DeviceView:
        """A device's twin with its state (edgetwin's twin services answer it; KubeEdge's do not)."""
        reply = await self._request(device_id, Action.TWIN_GET, encode_request)
        extension = reply.edgetwin
        return DeviceView(
            full_device_id(device_id),
            extension.state if extension is not None and extension.state else "unknown",
            extension.lastOnlineTime if extension is not None else "",
            _states(reply.twin),
        )

    async def nodes(self) -> list[str]:
        """The nodes whose twin services announce themselves on this broker, in name order."""
        await self._barrier()
        return sorted(self._nodes)

    async def wait_for_twin(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a twin service on the broker; whether one came.

        Twin services keep a retained presence message on their broker (``twin.presence``), so a
        command sent while the stack is still starting can wait for one instead of timing out.
        """
        if await self.nodes():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._twin_seen.wait()
        except TimeoutError:
            return False
        return True

    async def _barrier(self) -> None:
        # The broker delivers in order: once this comes back, every retained message of the
        # subscriptions made before it has arrived.
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        event_id = self._next_id()
        self._pending[event_id] = future
        try:
            self._mqtt.publish(self._barrier_topic, encode_request(event_id), qos=1)
            await self._wait(future, "the broker")
        finally:
            self._pending.pop(event_id, None)

    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> dict[str, PropertyState]:
        """Set desired values; returns the changed properties as the twin stored them."""
        reply = await self._request(
            device_id, Action.TWIN_UPDATE, lambda event_id: encode_update(event_id, desired=values)
        )
        return _states(reply.twin)

    async def report(self, device_id: str, values: Mapping[str, str]) -> dict[str, PropertyState]:
        """Report values as a mapper does (``actual``)."""
        stamp = now_ms()
        reported = {name: (value, stamp) for name, value in values.items()}
        reply = await self._request(
            device_id, Action.TWIN_UPDATE, lambda event_id: encode_update(event_id, reported=reported)
        )
        return _states(reply.twin)

    async def members(self, node: str) -> list[Member]:
        """The devices of a node, as ``membership/get`` returns them."""
        result_topic = membership_topic(node, "get/result")
        event_id = self._next_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = future
        with translate_mqtt_errors():
            await self._mqtt.subscribe(result_topic)
        try:
            self._mqtt.publish(membership_topic(node, "get"), encode_request(event_id), qos=1)
            reply = _decode_reply(MembershipReply, await self._wait(future, f"the membership of node {node}"))
        finally:
            self._pending.pop(event_id, None)
            with translate_mqtt_errors():
                await self._mqtt.unsubscribe(result_topic)
        _raise_for(reply, f"node {node}")
        return list(reply.devices or [])

    async def _request(self, device_id: str, action: Action, body: Callable[[str], bytes]) -> Reply:
        device_id = full_device_id(device_id)
        event_id = self._next_id()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = future
        try:
            self._mqtt.publish(device_topic(device_id, action), body(event_id), qos=1)
            payload = await self._wait(future, f"{action.value} of {device_id}")
        finally:
            self._pending.pop(event_id, None)
        reply = _decode_reply(Reply, payload)
        _raise_for(reply, device_id)
        return reply

    async def _wait(self, future: asyncio.Future[bytes], what: str) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise RequestRefused(
                f"no answer to {what} within {self.timeout:g}s: is the twin service running on "
                f"{self._mqtt.address.url}, and does its node have this device?",
                504,
            ) from None

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- events -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscription(
        self, device_id: str | None = None, kinds: tuple[EventKind, ...] = ("document", "delta")
    ) -> AsyncIterator[asyncio.Queue[TwinEvent]]:
        """A queue of documents/deltas for one device (``namespace/name``) or all; subscribed on entry.

        For one device, its twin is asked for first, so an unknown device raises ``UnknownDevice``
        instead of waiting forever for events that never come.
        """
        if device_id is not None:
            device_id = full_device_id(device_id)
            await self.get(device_id)
        level = device_id if device_id is not None else "+/+"
        topics = [f"{DEVICE_PREFIX}{level}/{_EVENTS[k].value}" for k in kinds]
        queue: asyncio.Queue[TwinEvent] = asyncio.Queue()
        entry = (device_id, queue)
        self._watchers.append(entry)
        with translate_mqtt_errors():
            await self._mqtt.subscribe(*topics)
        try:
            yield queue
        finally:
            self._watchers.remove(entry)
            await self._mqtt.unsubscribe(*topics)

    async def watch(
        self, device_id: str | None = None, kinds: tuple[EventKind, ...] = ("document", "delta")
    ) -> AsyncIterator[TwinEvent]:
        """Documents and deltas as they are published, for one device or all."""
        async with self.subscription(device_id, kinds) as queue:
            while True:
                yield await queue.get()

    # -- incoming -----------------------------------------------------------------------------------

    def _route(self, message: Message) -> None:
        node = Presence.node_of(message)
        if node is not None:
            if message.payload:
                self._nodes.add(node)
                self._twin_seen.set()
            else:
                self._nodes.discard(node)
            return
        event = _event_of(message)
        if event is not None:
            for wanted, queue in self._watchers:
                if wanted is None or wanted == event.device_id:
                    queue.put_nowait(event)
            return
        future = self._pending.get(peek_event_id(message.payload))
        if future is not None and not future.done():
            future.set_result(message.payload)


_ReplyT = TypeVar("_ReplyT", Reply, MembershipReply)


def _decode_reply(cls: type[_ReplyT], payload: bytes) -> _ReplyT:
    try:
        return decode(cls, payload, max_size=MAX_MEMBERSHIP_PAYLOAD)
    except InvalidPayload as exc:
        raise RequestRefused(f"the twin's answer cannot be read: {exc}", 502) from exc


def _event_of(message: Message) -> TwinEvent | None:
    topic = message.topic
    if not topic.startswith(DEVICE_PREFIX):
        return None
    rest = topic[len(DEVICE_PREFIX) :]
    for action in _EVENTS.values():
        suffix = "/" + action.value
        if not rest.endswith(suffix):
            continue
        device_id = rest[: -len(suffix)]
        if device_id.count("/") != 1:
            return None  # the legacy bare-name copy of an event: the namespaced one is taken
        try:
            body = orjson.loads(message.payload)
            if action is Action.STATE_UPDATE_RESULT:
                reply = decode(StateReply, message.payload)
                if reply.device is None:
                    return None  # an error answer to someone's state update
                state, last = reply.device.state, reply.device.lastOnlineTime
                return TwinEvent("state", device_id, body, state=state, last_online=last)
            if action is Action.TWIN_UPDATE_DELTA:
                delta = decode(TwinDelta, message.payload)
                return TwinEvent("delta", device_id, body, _states(delta.twin), dict(delta.delta))
            document = decode(TwinDocument, message.payload)
        except (InvalidPayload, orjson.JSONDecodeError):
            return None
        current = {
            name: PropertyState.from_wire(name, e.current if e is not None else None)
            for name, e in document.twin.items()
        }
        return TwinEvent("document", device_id, body, current)
    return None
