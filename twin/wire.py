"""Every MQTT body of the edge twin API (DESIGN.md §4), both directions, in one place.

Incoming bodies are pydantic models, decoded tolerantly: what real KubeEdge clients send is
accepted (``"event_id": ""``, ``"timestamp": 0``, ``"metadata": {"type": "Updated"}``, ``"State"``
for ``state``, numbers where strings are meant), unknown keys are ignored, and everything else
becomes ``InvalidPayload`` with a reason — no input raises anything else (fuzzed in
tests/twin/test_wire.py). The same models read the twin's replies in ``TwinClient`` and the
mapper runner.

Outgoing bodies are ``TypedDict`` shapes built by the ``encode_*`` functions here and serialised
with orjson: the twin service publishes three of them per update, so they are plain dicts rather
than model instances (a model per body would cost a third of the twin's throughput).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, NotRequired, TypedDict, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from twin.errors import InvalidPayload

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DEVICE_STATES",
    "MAX_MEMBERSHIP_PAYLOAD",
    "DeltaBody",
    "DeviceState",
    "DocumentEntry",
    "MemberBody",
    "MembershipGet",
    "MembershipReply",
    "PropertyBody",
    "Reply",
    "Request",
    "StateReply",
    "StateUpdate",
    "TwinDelta",
    "TwinDocument",
    "TwinGet",
    "TwinUpdate",
    "ValueBody",
    "VersionBody",
    "WireProperty",
    "WireValue",
    "WireVersion",
    "decode",
    "encode_delta",
    "encode_document",
    "encode_error",
    "encode_membership",
    "encode_membership_updated",
    "encode_request",
    "encode_state_result",
    "encode_state_update",
    "encode_twin_result",
    "encode_update",
    "new_event_id",
    "now_ms",
    "peek_event_id",
]

# KubeEdge bounds a twin value to 512 characters and a key to 128; a body far larger than a few
# hundred properties is a mistake or an attack, and is refused before it is parsed.
DEFAULT_MAX_PAYLOAD = 256 * 1024
#: What the twin answers (a membership list carries every device's Device and DeviceModel: ~1.8 KB
#: each, so 1,000 devices make ~1.8 MB) is read up to what the MQTT transport carries at all.
MAX_MEMBERSHIP_PAYLOAD = 16 * 1024 * 1024

# KubeEdge >= 1.19 checks these (case-insensitively); 1.18 had "disconnected" for "unhealthy".
DEVICE_STATES = ("online", "offline", "ok", "unknown", "unhealthy", "disconnected")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_event_id() -> str:
    """A fresh event id, for the bodies KubeEdge sends with a new uuid (delta, state result...)."""
    return str(uuid.uuid4())


# -- incoming: tolerant models ------------------------------------------------------------------------


def _scalar_to_str(value: object) -> object:
    # Apps send {"value": 21} or {"value": true} (KubeEdge refuses the whole body); the wire type is a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return value


WireString = Annotated[str, BeforeValidator(_scalar_to_str)]


def _event_id(value: object) -> object:
    return "" if value is None else _scalar_to_str(value)


EventId = Annotated[str, BeforeValidator(_event_id)]


class _Body(BaseModel):
    # Tolerant: KubeEdge clients add fields we do not know.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class ValueMetadata(_Body):
    timestamp: int = 0


class WireValue(_Body):
    value: WireString | None = None
    metadata: ValueMetadata | None = None


class TypeMetadata(_Body):
    type: str = ""


class WireVersion(_Body):
    cloud: int = 0
    edge: int = 0


class WireProperty(_Body):
    """One property as KubeEdge's ``MsgTwin``: in updates, results, documents and deltas."""

    expected: WireValue | None = None
    actual: WireValue | None = None
    optional: bool | None = None
    metadata: TypeMetadata | None = None
    expected_version: WireVersion | None = None
    actual_version: WireVersion | None = None

    @property
    def desired(self) -> str | None:
        return self.expected.value if self.expected is not None else None

    @property
    def reported(self) -> str | None:
        return self.actual.value if self.actual is not None else None


class Request(_Body):
    event_id: EventId = ""
    timestamp: int = 0


class TwinUpdate(Request):
    """``twin/update`` (and ``twin/cloud_updated``): ``null`` for a property asks to delete it."""

    twin: dict[str, WireProperty | None]


class TwinGet(Request):
    pass


class MembershipGet(Request):
    pass


class StateUpdate(Request):
    state: str = Field(validation_alias=AliasChoices("state", "State"))


class DeviceStateExtension(_Body):
    state: str = ""
    lastOnlineTime: str = ""


class Reply(Request):
    """A result as clients read it: ``code``/``reason`` on errors, ``twin`` on success."""

    code: int | None = None
    reason: str = ""
    twin: dict[str, WireProperty | None] = Field(default_factory=dict)
    #: On a get result: the device's state (edgetwin's extension).
    edgetwin: DeviceStateExtension | None = None


class DocumentEntry(_Body):
    last: WireProperty | None = None
    current: WireProperty | None = None


class TwinDocument(Request):
    twin: dict[str, DocumentEntry | None] = Field(default_factory=dict)


class TwinDelta(Request):
    twin: dict[str, WireProperty | None] = Field(default_factory=dict)
    delta: dict[str, WireString] = Field(default_factory=dict)


class DeviceState(_Body):
    name: str = ""
    state: str = ""
    lastOnlineTime: str = ""


class StateReply(Request):
    code: int | None = None
    reason: str = ""
    device: DeviceState | None = None


class Member(_Body):
    id: str = ""
    name: str = ""
    description: str = ""
    state: str = ""
    last_online: str = ""
    #: What a mapper needs to run the device (``device``, ``model``); KubeEdge clients ignore it.
    edgetwin: dict[str, Any] | None = None


class MembershipReply(Request):
    """A ``membership/get/result`` (``devices``) or a ``membership/updated`` event (the others)."""

    code: int | None = None
    reason: str = ""
    devices: list[Member] | None = None
    added_devices: list[Member] | None = None
    removed_devices: list[Member] | None = None


_BodyT = TypeVar("_BodyT", bound=_Body)


def _load(payload: bytes, max_size: int) -> Any:
    if len(payload) > max_size:
        raise InvalidPayload(f"payload of {len(payload)} bytes exceeds the limit of {max_size} bytes")
    if not payload.strip():
        raise InvalidPayload("empty payload: expected a JSON object")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"payload is not valid JSON: {exc}") from exc


def decode(cls: type[_BodyT], payload: bytes, *, max_size: int = DEFAULT_MAX_PAYLOAD) -> _BodyT:
    """Parse a body of type ``cls``; ``InvalidPayload`` (with a reason) on anything else."""
    data = _load(payload, max_size)
    if not isinstance(data, dict):
        raise InvalidPayload(f"payload must be a JSON object, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(_reason(exc)) from exc
    except (RecursionError, ValueError, TypeError) as exc:
        raise InvalidPayload(f"payload cannot be read: {exc}") from exc


def _reason(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "missing":
            problems.append(f"missing key '{where}'")
        else:
            problems.append(f"'{where}': {err['msg']}")
    return "invalid payload: " + "; ".join(problems)


def peek_event_id(payload: bytes) -> str:
    """The request's ``event_id`` if it can be found at all, so an error reply can carry it."""
    try:
        data = orjson.loads(payload)
    except (orjson.JSONDecodeError, RecursionError):
        return ""
    if isinstance(data, dict):
        value = data.get("event_id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return ""


# -- outgoing: shapes and encoders ----------------------------------------------------------------------


class ValueMetadataBody(TypedDict):
    timestamp: int


class ValueBody(TypedDict):
    value: str
    metadata: ValueMetadataBody


class VersionBody(TypedDict):
    cloud: int
    edge: int


class TypeMetadataBody(TypedDict):
    type: str


class PropertyBody(TypedDict):
    """A property's whole state: ``expected`` and ``actual`` always present (empty when unset),
    because published mappers read ``current.expected.value`` without checking."""

    expected: ValueBody
    actual: ValueBody
    optional: bool
    metadata: TypeMetadataBody
    expected_version: VersionBody
    actual_version: VersionBody


class DeltaBody(TypedDict):
    event_id: str
    timestamp: int
    twin: dict[str, PropertyBody]
    delta: dict[str, str]


class MemberBody(TypedDict):
    id: str
    name: str
    description: NotRequired[str]
    state: NotRequired[str]
    last_online: NotRequired[str]
    edgetwin: NotRequired[dict[str, Any]]


class _UpdateValue(TypedDict, total=False):
    expected: dict[str, Any]
    actual: dict[str, Any]
    metadata: TypeMetadataBody


def encode_update(
    event_id: str,
    *,
    desired: Mapping[str, str] | None = None,
    reported: Mapping[str, tuple[str, int]] | None = None,
) -> bytes:
    """A ``twin/update``: desired values as an app sets them, reported ``(value, ms)`` as a mapper does."""
    twin: dict[str, _UpdateValue] = {}
    for name, value in (desired or {}).items():
        twin[name] = {"expected": {"value": value}, "metadata": {"type": "Updated"}}
    for name, (value, stamp) in (reported or {}).items():
        entry = twin.setdefault(name, {"metadata": {"type": "Updated"}})
        entry["actual"] = {"value": value, "metadata": {"timestamp": stamp}}
    return orjson.dumps({"event_id": event_id, "timestamp": now_ms(), "twin": twin})


def encode_request(event_id: str) -> bytes:
    """A ``twin/get`` or ``membership/get``."""
    return orjson.dumps({"event_id": event_id, "timestamp": now_ms()})


def encode_state_update(event_id: str, state: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "timestamp": now_ms(), "state": state})


def encode_error(event_id: str, code: int, reason: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "timestamp": now_ms(), "code": code, "reason": reason})


def encode_twin_result(
    event_id: str, twin: Mapping[str, PropertyBody], *, state: str | None = None, last_online: str = ""
) -> bytes:
    """``twin/update/result`` and ``twin/get/result`` on success.

    A get result also carries the device's state under ``edgetwin`` (KubeEdge clients ignore it):
    KubeEdge has no request that answers a device's state.
    """
    body: dict[str, Any] = {"event_id": event_id, "timestamp": now_ms(), "twin": twin}
    if state is not None:
        body["edgetwin"] = (
            {"state": state, "lastOnlineTime": last_online} if last_online else {"state": state}
        )
    return orjson.dumps(body)


def encode_document(
    event_id: str, stamp: int, changes: Iterable[tuple[str, PropertyBody | None, PropertyBody | None]]
) -> bytes:
    """``twin/update/document``: per changed property its whole state before (or null) and after."""
    twin = {name: {"last": last, "current": current} for name, last, current in changes}
    return orjson.dumps({"event_id": event_id, "timestamp": stamp, "twin": twin})


def encode_delta(twin: Mapping[str, PropertyBody], delta: Mapping[str, str]) -> bytes:
    """``twin/update/delta``: under a new event id, as KubeEdge sends it."""
    body: DeltaBody = {
        "event_id": new_event_id(),
        "timestamp": now_ms(),
        "twin": dict(twin),
        "delta": dict(delta),
    }
    return orjson.dumps(body)


def encode_state_result(name: str, state: str, last_online: str) -> bytes:
    """``state/update/result``: under a new event id; ``lastOnlineTime`` only once it is known."""
    device: dict[str, str] = {"name": name, "state": state}
    if last_online:
        device["lastOnlineTime"] = last_online
    return orjson.dumps({"event_id": new_event_id(), "timestamp": now_ms(), "device": device})


def encode_membership(event_id: str, devices: Iterable[MemberBody]) -> bytes:
    """``membership/get/result``."""
    return _joined({"event_id": event_id, "timestamp": now_ms()}, devices=devices)


def encode_membership_updated(added: Iterable[MemberBody], removed: Iterable[MemberBody]) -> bytes:
    """``membership/updated``: under a new event id."""
    return _joined(
        {"event_id": new_event_id(), "timestamp": now_ms()}, added_devices=added, removed_devices=removed
    )


def _joined(head: dict[str, object], **lists: Iterable[MemberBody]) -> bytes:
    """``orjson.dumps({**head, **lists})``, each list item encoded as it comes: with a thousand
    devices, their member bodies are never all alive at once (``twin.memory``)."""
    parts = [orjson.dumps(head)[:-1]]
    for key, items in lists.items():
        parts.append(b',"%s":[%s]' % (key.encode(), b",".join(orjson.dumps(item) for item in items)))
    return b"".join(parts) + b"}"
