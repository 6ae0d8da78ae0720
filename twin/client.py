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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

import orjson

from edgemqtt.client import BrokerAddress, Message, MqttClient
from twin._transport import translate_mqtt_errors
from twin.codec import encode, now_ms
from twin.errors import RequestRefused, UnknownDevice, VersionConflict
from twin.topics import DEVICE_PREFIX, Action, device_topic, full_device_id, membership_topic

__all__ = ["PropertyState", "TwinClient", "TwinEvent"]

_counter = itertools.count(1)

EventKind = Literal["document", "delta"]


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
    def from_wire(cls, name: str, body: Mapping[str, Any]) -> PropertyState:
        expected = body.get("expected") or {}
        actual = body.get("actual") or {}
        return cls(
            name=name,
            desired=expected.get("value") or None,
            reported=actual.get("value") or None,
            desired_timestamp=int((expected.get("metadata") or {}).get("timestamp", 0)),
            reported_timestamp=int((actual.get("metadata") or {}).get("timestamp", 0)),
            type=str((body.get("metadata") or {}).get("type", "string")),
        )


@dataclass(frozen=True)
class TwinEvent:
    """A document or delta published by the twin."""

    kind: EventKind
    device_id: str
    body: dict[str, Any]
    delta: dict[str, str] = field(default_factory=dict)

    @property
    def current(self) -> dict[str, PropertyState]:
        """For documents: each changed property's state after the change."""
        twin = self.body.get("twin") or {}
        if self.kind == "delta":
            return {name: PropertyState.from_wire(name, body) for name, body in twin.items()}
        return {
            name: PropertyState.from_wire(name, change.get("current") or {}) for name, change in twin.items()
        }


def _result_filters() -> list[str]:
    return [
        f"{DEVICE_PREFIX}+/+/{action.value}"
        for action in (Action.TWIN_UPDATE_RESULT, Action.TWIN_GET_RESULT, Action.STATE_UPDATE_RESULT)
    ]


def _raise_for(body: Mapping[str, Any], device_id: str) -> None:
    code = body.get("code")
    if code is None:
        return
    reason = str(body.get("reason", "no reason given"))
    if code == 404:
        raise UnknownDevice(reason)
    if code == 409:
        raise VersionConflict(reason)
    raise RequestRefused(f"{device_id}: {reason}", int(code))


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
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._watchers: list[tuple[str | None, asyncio.Queue[TwinEvent]]] = []
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        with translate_mqtt_errors():
            await self._mqtt.connect()
            await self._mqtt.subscribe(*_result_filters())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._mqtt.close()

    # -- requests -------------------------------------------------------------------------------

    async def get(self, device_id: str) -> dict[str, PropertyState]:
        """Every property of a device's twin."""
        body = await self._request(device_id, Action.TWIN_GET, {})
        return {name: PropertyState.from_wire(name, prop) for name, prop in (body.get("twin") or {}).items()}

    async def set_desired(self, device_id: str, values: Mapping[str, str]) -> dict[str, PropertyState]:
        """Set desired values; returns the changed properties as the twin stored them."""
        twin = {
            name: {"expected": {"value": value}, "metadata": {"type": "Updated"}}
            for name, value in values.items()
        }
        body = await self._request(device_id, Action.TWIN_UPDATE, {"twin": twin})
        return {name: PropertyState.from_wire(name, prop) for name, prop in (body.get("twin") or {}).items()}

    async def report(self, device_id: str, values: Mapping[str, str]) -> dict[str, PropertyState]:
        """Report values as a mapper does (``actual``)."""
        stamp = now_ms()
        twin = {
            name: {
                "actual": {"value": value, "metadata": {"timestamp": stamp}},
                "metadata": {"type": "Updated"},
            }
            for name, value in values.items()
        }
        body = await self._request(device_id, Action.TWIN_UPDATE, {"twin": twin})
        return {name: PropertyState.from_wire(name, prop) for name, prop in (body.get("twin") or {}).items()}

    async def members(self, node: str) -> list[dict[str, Any]]:
        """The devices of a node, as ``membership/get`` returns them."""
        result_topic = membership_topic(node, "get/result")
        event_id = self._next_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = future
        with translate_mqtt_errors():
            await self._mqtt.subscribe(result_topic)
        try:
            self._mqtt.publish(
                membership_topic(node, "get"), encode({"event_id": event_id, "timestamp": now_ms()}), qos=1
            )
            body = await self._wait(future, f"membership of node {node}")
        finally:
            self._pending.pop(event_id, None)
            await self._mqtt.unsubscribe(result_topic)
        _raise_for(body, node)
        devices = body.get("devices")
        return list(devices) if isinstance(devices, list) else []

    async def _request(self, device_id: str, action: Action, body: dict[str, Any]) -> dict[str, Any]:
        device_id = full_device_id(device_id)
        event_id = self._next_id()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[event_id] = future
        try:
            self._mqtt.publish(
                device_topic(device_id, action),
                encode({"event_id": event_id, "timestamp": now_ms(), **body}),
                qos=1,
            )
            result = await self._wait(future, f"{action.value} of {device_id}")
        finally:
            self._pending.pop(event_id, None)
        _raise_for(result, device_id)
        return result

    async def _wait(self, future: asyncio.Future[dict[str, Any]], what: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise RequestRefused(
                f"no answer to {what} within {self.timeout:g}s: is the twin service running on "
                f"{self._mqtt.address.url}?",
                504,
            ) from None

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    # -- events -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def subscription(
        self, device_id: str | None = None, kinds: tuple[EventKind, ...] = ("document", "delta")
    ) -> AsyncIterator[asyncio.Queue[TwinEvent]]:
        """A queue of documents/deltas for one device (``namespace/name``) or all; subscribed on entry."""
        if device_id is not None:
            device_id = full_device_id(device_id)
        level = device_id if device_id is not None else "+/+"
        actions = {"document": Action.TWIN_UPDATE_DOCUMENT, "delta": Action.TWIN_UPDATE_DELTA}
        topics = [f"{DEVICE_PREFIX}{level}/{actions[k].value}" for k in kinds]
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
        try:
            body = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(body, dict):
            return
        event = _event_of(message.topic, body)
        if event is not None:
            for wanted, queue in self._watchers:
                if wanted is None or wanted == event.device_id:
                    queue.put_nowait(event)
            return
        future = self._pending.get(str(body.get("event_id", "")))
        if future is not None and not future.done():
            future.set_result(body)


def _event_of(topic: str, body: dict[str, Any]) -> TwinEvent | None:
    if not topic.startswith(DEVICE_PREFIX):
        return None
    rest = topic[len(DEVICE_PREFIX) :]
    for kind, action in (("document", Action.TWIN_UPDATE_DOCUMENT), ("delta", Action.TWIN_UPDATE_DELTA)):
        suffix = "/" + action.value
        if rest.endswith(suffix):
            device_id = rest[: -len(suffix)]
            if device_id.count("/") != 1:
                return None
            delta = body.get("delta") if kind == "delta" else None
            return TwinEvent(
                kind,  # type: ignore[arg-type]
                device_id,
                body,
                {str(k): str(v) for k, v in delta.items()} if isinstance(delta, dict) else {},
            )
    return None
