"""What the dashboard shows and writes, from objects as the API serves them: pure, no sockets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from cloud_sync.checks import ModelCheck, Problem, check_model
from cloud_sync.dashboard.hub import Subscriber, frame
from cloud_sync.dashboard.views import device_view, event_view, node_view
from cloud_sync.dashboard.writes import DeviceUnusable, desired_patch
from twin.errors import InvalidValue, OutOfRange, ReadOnlyProperty, TypeMismatch, UnknownProperty

MODEL = {
    "apiVersion": "devices.kubeedge.io/v1beta1",
    "kind": "DeviceModel",
    "metadata": {"name": "thermo-model", "namespace": "default"},
    "spec": {
        "properties": [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly", "unit": "°C"},
            {"name": "target", "type": "FLOAT", "accessMode": "ReadWrite", "minimum": "5", "maximum": "30"},
            {"name": "mode", "type": "STRING"},
        ]
    },
}
MODELS = {"default/thermo-model": check_model("default/thermo-model", MODEL)}


def device(status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "Device",
        "metadata": {"name": "thermo-1", "namespace": "default"},
        "spec": {
            "deviceModelRef": {"name": "thermo-model"},
            "nodeName": "gw-1",
            "protocol": {"protocolName": "modbus"},
            "properties": [
                {"name": "temperature", "reportToCloud": True},
                {"name": "target", "desired": {"value": "21"}},
                {"name": "mode"},
            ],
            **spec,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def reported(name: str, text: str, at: str = "1764583200123") -> dict[str, Any]:
    return {"propertyName": name, "reported": {"value": text, "metadata": {"timestamp": at, "type": "float"}}}


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def model() -> Any:
    return MODELS["default/thermo-model"].model


def test_a_device_shows_desired_against_reported_with_its_models_type_bounds_and_unit() -> None:
    status = {
        "state": "online",
        "lastOnlineTime": "2026-12-01T10:00:00Z",
        "twins": [reported("temperature", "19.5"), reported("target", "21.0")],
    }
    view = device_view(device(status), model(), None)
    assert (view["id"], view["node"], view["model"], view["protocol"], view["state"]) == (
        "default/thermo-1",
        "gw-1",
        "thermo-model",
        "modbus",
        "online",
    )
    assert view["lastOnline"] == ms("2026-12-01T10:00:00+00:00")
    temperature, target, mode = view["properties"]
    assert (temperature["reported"], temperature["reportedAt"], temperature["unit"]) == (
        "19.5",
        1764583200123,
        "°C",
    )
    assert (temperature["writable"], temperature["desired"], temperature["inSync"]) == (False, None, None)
    # "21" and "21.0" are the same FLOAT: the device has caught up.
    assert (target["desired"], target["reported"], target["inSync"]) == ("21", "21.0", True)
    assert (target["minimum"], target["maximum"], target["writable"]) == ("5", "30", True)
    assert (mode["type"], mode["reported"], mode["reportedAt"]) == ("STRING", None, None)


def test_a_desired_value_the_device_has_not_reported_yet_is_not_in_sync() -> None:
    view = device_view(device({"twins": [reported("target", "18")]}), model(), None)
    assert view["properties"][1]["inSync"] is False


def test_a_device_that_does_not_parse_is_still_shown_with_its_problem() -> None:
    odd = device(status={"twins": "garbage", "state": 3}, properties=[{"name": "x"}, "junk", {"nope": 1}])
    view = device_view(odd, None, Problem("UnknownDeviceModel", "there is no DeviceModel default/x"))
    assert view["state"] == "unknown"
    assert view["problem"] == {"reason": "UnknownDeviceModel", "message": "there is no DeviceModel default/x"}
    assert [p["name"] for p in view["properties"]] == ["x"]
    assert view["properties"][0]["type"] is None
    assert view["properties"][0]["writable"] is False


def test_a_nodes_last_heartbeat_is_the_newer_of_its_lease_and_its_ready_condition() -> None:
    node = {
        "metadata": {"name": "gw-1"},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "EdgeNodeReady",
                    "lastHeartbeatTime": "2026-12-01T10:00:00Z",
                    "lastTransitionTime": "2026-12-01T09:00:00Z",
                }
            ],
            "addresses": [
                {"type": "Hostname", "address": "gw"},
                {"type": "InternalIP", "address": "10.0.0.7"},
            ],
            "nodeInfo": {
                "operatingSystem": "linux",
                "architecture": "arm64",
                "kubeletVersion": "edgetwin-0.1.0",
            },
        },
    }
    lease = {"spec": {"renewTime": "2026-12-01T10:00:30.500000Z"}}
    view = node_view("gw-1", node, lease, 3)
    assert (view["state"], view["reason"], view["devices"]) == ("Ready", "EdgeNodeReady", 3)
    assert view["lastHeartbeat"] == ms("2026-12-01T10:00:30.500+00:00")
    assert view["since"] == ms("2026-12-01T09:00:00+00:00")
    assert (view["address"], view["os"], view["arch"]) == ("10.0.0.7", "linux", "arm64")
    silent = {
        "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]}
    }
    assert node_view("gw-1", silent, None, 0)["state"] == "NotReady"
    assert node_view("gw-1", silent, None, 0)["lastHeartbeat"] is None
    never = node_view("gw-2", None, None, 1)
    assert (never["state"], never["lastHeartbeat"]) == ("NotRegistered", None)


def test_an_event_names_its_object_and_takes_the_newest_time_it_has() -> None:
    event = {
        "metadata": {
            "name": "thermo-1.abc",
            "namespace": "default",
            "creationTimestamp": "2026-12-01T09:00:00Z",
        },
        "involvedObject": {"kind": "Device", "name": "thermo-1", "namespace": "default"},
        "reason": "InvalidDesiredValue",
        "message": "spec.properties[1].desired.value: above the maximum",
        "type": "Warning",
        "count": 2,
        "lastTimestamp": "2026-12-01T10:00:00Z",
    }
    view = event_view(event)
    assert (view["id"], view["kind"], view["object"], view["count"]) == (
        "default/thermo-1.abc",
        "Device",
        "default/thermo-1",
        2,
    )
    assert view["time"] == ms("2026-12-01T10:00:00+00:00")
    node_event = {
        "metadata": {"name": "n", "creationTimestamp": "2026-12-01T09:00:00Z"},
        "involvedObject": {},
    }
    assert event_view(node_event)["time"] == ms("2026-12-01T09:00:00+00:00")
    assert event_view(node_event)["type"] == "Normal"


def test_the_patch_tests_the_property_and_replaces_or_adds_its_desired_value() -> None:
    assert desired_patch(device(), MODELS, "target", "22.5") == [
        {"op": "test", "path": "/spec/properties/1/name", "value": "target"},
        {"op": "replace", "path": "/spec/properties/1/desired/value", "value": "22.5"},
    ]
    assert desired_patch(device(), MODELS, "mode", "eco")[1] == {
        "op": "add",
        "path": "/spec/properties/2/desired",
        "value": {"value": "eco"},
    }
    with_metadata = device(properties=[{"name": "mode", "desired": {"metadata": {"by": "x"}}}])
    assert desired_patch(with_metadata, MODELS, "mode", "eco")[1] == {
        "op": "add",
        "path": "/spec/properties/0/desired/value",
        "value": "eco",
    }


@pytest.mark.parametrize(
    ("prop", "text", "error", "says"),
    [
        ("target", "31", OutOfRange, "above the maximum 30"),
        ("target", "nan", OutOfRange, "not a finite number"),
        ("target", "hot", TypeMismatch, "is a FLOAT"),
        ("temperature", "20", ReadOnlyProperty, "ReadOnly"),
        ("ghost", "1", UnknownProperty, "the Device has no property 'ghost'"),
    ],
)
def test_the_patch_is_refused_with_the_models_reason(
    prop: str, text: str, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        desired_patch(device(), MODELS, prop, text)


def test_no_patch_without_a_usable_model() -> None:
    with pytest.raises(DeviceUnusable, match="no DeviceModel default/thermo-model"):
        desired_patch(device(), {}, "target", "20")
    broken: dict[str, ModelCheck] = {
        "default/thermo-model": ModelCheck("default/thermo-model", None, "DeviceModel is not valid", "r")
    }
    with pytest.raises(DeviceUnusable, match="not valid"):
        desired_patch(device(), broken, "target", "20")
    extra = device(properties=[{"name": "humidity"}])
    with pytest.raises(UnknownProperty, match="DeviceModel default/thermo-model has no property"):
        desired_patch(extra, MODELS, "humidity", "20")
    assert issubclass(OutOfRange, InvalidValue)


def test_a_page_that_falls_behind_is_cut_off_instead_of_queueing_without_end() -> None:
    subscriber = Subscriber(limit=2)
    for index in range(3):
        subscriber.offer(frame("changes", {"n": index}))
    assert subscriber.closed
    assert subscriber.queue.get_nowait() is None  # its stream ends: the page reconnects
    assert subscriber.queue.empty()
    assert frame("changes", {"a": "b c"}) == b'event: changes\ndata: {"a":"b c"}\n\n'
