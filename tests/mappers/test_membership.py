"""The twin's membership answers, read tolerantly."""

from __future__ import annotations

import orjson
import pytest

from mappers.membership import parse_membership
from tests.mappers.builders import device, model
from twin.errors import InvalidPayload
from twin.wire import DEFAULT_MAX_PAYLOAD

MODEL = model("m", "virtual", {"a": "INT"})
DEVICE = device("d", "m", "virtual", {}, {"a": {}})


def entry(dev_id: str = "default/d") -> dict[str, object]:
    return {
        "id": dev_id,
        "name": "d",
        "state": "unknown",
        "edgetwin": {"device": DEVICE.model_dump(mode="json"), "model": MODEL.model_dump(mode="json")},
    }


def test_get_result_lists_every_device_with_its_spec() -> None:
    change = parse_membership(orjson.dumps({"event_id": "1", "timestamp": 0, "devices": [entry()]}))
    assert change.full and change.removed == ()
    (member,) = change.added
    assert (member.id, member.device, member.model) == ("default/d", DEVICE, MODEL)


def test_updated_event_adds_and_removes() -> None:
    body = {
        "added_devices": [entry()],
        "removed_devices": [{"id": "plant/boiler", "name": "boiler"}, {"name": "led"}],
    }
    change = parse_membership(orjson.dumps(body))
    assert not change.full
    assert [m.id for m in change.added] == ["default/d"]
    assert change.removed == ("plant/boiler", "default/led")


def test_entries_without_a_spec_or_with_a_broken_one_are_skipped() -> None:
    broken = entry()
    broken["edgetwin"] = {"device": {"metadata": {}}}
    body = {"devices": [{"id": "default/kubeedge-only", "name": "kubeedge-only"}, broken, entry()]}
    assert [m.id for m in parse_membership(orjson.dumps(body)).added] == ["default/d"]


@pytest.mark.parametrize(
    "payload", [b"not json", b'{"code": 404, "reason": "no such node"}', b'{"devices": 3}']
)
def test_unreadable_or_failed_answer_is_invalid_payload(payload: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_membership(payload)


def test_the_list_of_a_node_with_a_thousand_devices_is_read_whole() -> None:
    """Far beyond the limit of what the twin takes in from apps: the mapper must still read it."""
    entries = [entry(f"default/d{i}") for i in range(1000)]
    for index, item in enumerate(entries):
        item["name"] = f"d{index}"
    payload = orjson.dumps({"event_id": "1", "timestamp": 0, "devices": entries})
    assert len(payload) > DEFAULT_MAX_PAYLOAD
    assert len(parse_membership(payload).added) == 1000
