"""Decoding MQTT bodies: what KubeEdge clients send is accepted; nothing raises past InvalidPayload."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.errors import InvalidPayload
from twin.wire import (
    StateUpdate,
    TwinGet,
    TwinUpdate,
    decode,
    encode_error,
    peek_event_id,
)


def test_a_kubeedge_mapper_report_decodes() -> None:
    body = (
        b'{"event_id":"","timestamp":0,'
        b'"twin":{"temp":{"actual":{"value":"21.5"},"metadata":{"type":"Updated"}}}}'
    )
    request = decode(TwinUpdate, body)
    twin = request.twin["temp"]
    assert twin is not None
    assert twin.actual is not None
    assert twin.actual.value == "21.5"
    assert twin.expected is None


def test_numbers_and_booleans_become_wire_strings() -> None:
    request = decode(TwinUpdate, b'{"twin":{"a":{"expected":{"value":21}},"b":{"expected":{"value":true}}}}')
    values = {
        name: t.expected.value for name, t in request.twin.items() if t is not None and t.expected is not None
    }
    assert values == {"a": "21", "b": "true"}


def test_null_property_decodes_as_a_deletion() -> None:
    assert decode(TwinUpdate, b'{"twin":{"p":null}}').twin == {"p": None}


@pytest.mark.parametrize("key", ["state", "State"])
def test_state_is_read_from_either_spelling(key: str) -> None:
    assert decode(StateUpdate, json.dumps({key: "online"}).encode()).state == "online"


def test_unknown_fields_are_ignored() -> None:
    request = decode(TwinGet, b'{"event_id": 7, "extra": {"x": 1}}')
    assert request.event_id == "7"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"   ", "empty payload"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"null", "must be a JSON object"),
        (b'"twin"', "must be a JSON object"),
        (b'{"event_id": ""}', "missing key 'twin'"),
        (b'{"twin": []}', "'twin'"),
        (b'{"twin": {"p": {"expected": {"value": {"nested": 1}}}}}', "'twin.p.expected.value'"),
        (b'{"twin": {}, "timestamp": "yesterday"}', "'timestamp'"),
        (b"[" * 100_000 + b"]" * 100_000, "exceeds"),
    ],
)
def test_bad_bodies_raise_invalid_payload_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidPayload, match=reason):
        decode(TwinUpdate, payload, max_size=64 * 1024)


def test_deep_nesting_within_the_size_limit_is_refused_not_crashing() -> None:
    with pytest.raises(InvalidPayload):
        decode(TwinUpdate, b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize(
    ("payload", "event_id"),
    [
        (b'{"event_id": "abc"}', "abc"),
        (b'{"event_id": 12}', "12"),
        (b"{", ""),
        (b"[]", ""),
        (b'{"event_id": []}', ""),
    ],
)
def test_event_id_is_recovered_for_error_replies_when_possible(payload: bytes, event_id: str) -> None:
    assert peek_event_id(payload) == event_id


def test_error_body_has_kubeedge_fields() -> None:
    body = json.loads(encode_error("e", 404, "gone"))
    assert set(body) == {"event_id", "timestamp", "code", "reason"}
    assert (body["event_id"], body["code"], body["reason"]) == ("e", 404, "gone")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
twin_like: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={
        "event_id": json_values,
        "timestamp": json_values,
        "twin": st.dictionaries(
            st.text(max_size=10),
            st.none()
            | st.fixed_dictionaries(
                {}, optional={"expected": json_values, "actual": json_values, "metadata": json_values}
            ),
            max_size=3,
        )
        | json_values,
        "state": json_values,
        "State": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_never_raise_anything_but_invalid_payload(payload: bytes) -> None:
    for cls in (TwinUpdate, StateUpdate, TwinGet):
        with contextlib.suppress(InvalidPayload):
            decode(cls, payload)
    peek_event_id(payload)


@settings(max_examples=300, deadline=None)
@given(twin_like)
def test_fuzz_json_shaped_like_requests_never_raises_anything_but_invalid_payload(
    body: dict[str, Any],
) -> None:
    payload = json.dumps(body).encode()
    for cls in (TwinUpdate, StateUpdate, TwinGet):
        with contextlib.suppress(InvalidPayload):
            decode(cls, payload)
