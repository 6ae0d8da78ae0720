"""A down/sync read device by device: the same devices, and the same refusal of a malformed one."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from tests.fixtures.twin import SAMPLE_DEVICES
from twin.link import DesiredValue, DeviceAssignment, Sync, read_sync
from twin.manifests import load_manifests

SAMPLES = load_manifests([SAMPLE_DEVICES])
THERMOSTAT = SAMPLES.devices["default/thermostat"]
MODEL = SAMPLES.models["default/thermostat-model"]


def sync_body(devices: int) -> dict[str, object]:
    assignment = DeviceAssignment(
        device=THERMOSTAT,
        model=MODEL,
        generation=2,
        desired={"target": DesiredValue(value="21", cloud=1, edge=0)},
        revision="r1",
    ).model_dump(mode="json")
    return {"hello": "h1", "devices": [assignment] * devices, "removed": ["default/gone"]}


def test_a_sync_read_device_by_device_holds_what_the_whole_message_holds() -> None:
    payload = orjson.dumps(sync_body(3))
    envelope, devices = read_sync(payload)
    whole = Sync.model_validate_json(payload)
    assert envelope == whole.model_copy(update={"devices": []})
    assert [DeviceAssignment.model_validate_json(d) for d in devices] == whole.devices


def test_a_sync_without_devices_is_read() -> None:
    envelope, devices = read_sync(b'{"hello": "h1"}')
    assert envelope.hello == "h1" and devices == []


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"hello": "h1", "devices": [{"device": {}}]}',
        b'{"devices": []}',
        b'{"hello": "h1", "devices": "none"}',
        b"[]",
    ],
)
def test_a_malformed_sync_is_refused_with_the_errors_of_the_whole_message(payload: bytes) -> None:
    with pytest.raises(ValidationError) as whole:
        Sync.model_validate_json(payload)
    with pytest.raises(ValidationError) as read:
        read_sync(payload)
    assert read.value.errors() == whole.value.errors()


def test_one_malformed_device_refuses_the_whole_sync() -> None:
    body = sync_body(2)
    devices = body["devices"]
    assert isinstance(devices, list)
    devices.append({"device": THERMOSTAT.model_dump(mode="json"), "model": {"kind": "DeviceModel"}})
    with pytest.raises(ValidationError, match=r"devices\.2\.model"):
        read_sync(orjson.dumps(body))
