"""JSON bodies of the edge MQTT API (DESIGN.md §4): decoding requests, encoding replies.

Decoding accepts what real KubeEdge clients send (``"event_id": ""``, ``"timestamp": 0``,
``"metadata": {"type": "Updated"}``, ``"State"`` for ``state``, numbers where strings are meant)
and turns everything else into ``InvalidPayload`` with a reason: no input raises anything else
(fuzzed in tests/twin/test_codec.py).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from twin.errors import InvalidPayload

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "DEVICE_STATES",
    "GetRequest",
    "MembershipRequest",
    "StateUpdateRequest",
    "TwinUpdateRequest",
    "WireTwin",
    "WireValue",
    "decode",
    "encode",
    "error_body",
    "now_ms",
    "peek_event_id",
]

# KubeEdge bounds a twin value to 512 characters and a key to 128; a body far larger than a few
# hundred properties is a mistake or an attack, and is refused before it is parsed.
DEFAULT_MAX_PAYLOAD = 256 * 1024

DEVICE_STATES = ("online", "offline", "ok", "unknown", "unhealthy")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _scalar_to_str(value: object) -> object:
    # Apps send {"value": 21} or {"value": true}; the wire type is a string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return value


WireString = Annotated[str, BeforeValidator(_scalar_to_str)]


class _Wire(BaseModel):
    # Tolerant: KubeEdge clients add fields we do not know.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ValueMetadata(_Wire):
    timestamp: int = 0


class WireValue(_Wire):
    value: WireString | None = None
    metadata: ValueMetadata | None = None


class TypeMetadata(_Wire):
    type: str = ""


class WireVersion(_Wire):
    cloud: int = 0
    edge: int = 0


class WireTwin(_Wire):
    expected: WireValue | None = None
    actual: WireValue | None = None
    optional: bool | None = None
    metadata: TypeMetadata | None = None
    expected_version: WireVersion | None = None
    actual_version: WireVersion | None = None


def _event_id(value: object) -> object:
    return "" if value is None else _scalar_to_str(value)


EventId = Annotated[str, BeforeValidator(_event_id)]


class _Request(_Wire):
    event_id: EventId = ""
    timestamp: int = 0


class TwinUpdateRequest(_Request):
    twin: dict[str, WireTwin | None]


class GetRequest(_Request):
    pass


class MembershipRequest(_Request):
    pass


class StateUpdateRequest(_Request):
    state: str = Field(validation_alias=AliasChoices("state", "State"))


_RequestT = TypeVar("_RequestT", bound="_Request")


def _load(payload: bytes, max_size: int) -> Any:
    if len(payload) > max_size:
        raise InvalidPayload(f"payload of {len(payload)} bytes exceeds the limit of {max_size} bytes")
    if not payload.strip():
        raise InvalidPayload("empty payload: expected a JSON object")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"payload is not valid JSON: {exc}") from exc


def decode(cls: type[_RequestT], payload: bytes, *, max_size: int = DEFAULT_MAX_PAYLOAD) -> _RequestT:
    """Parse a request body of type ``cls``; ``InvalidPayload`` (with a reason) on anything else."""
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


def encode(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def error_body(event_id: str, code: int, reason: str) -> bytes:
    return orjson.dumps({"event_id": event_id, "timestamp": now_ms(), "code": code, "reason": reason})
