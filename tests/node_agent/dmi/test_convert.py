"""Devices, models and configData values in DMI's messages, as KubeEdge's edge builds them (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from node_agent.dmi.convert import decode_config_value, device_message, encode_config_value, model_message
from tests.fixtures.dmi import DMI_DEVICES
from twin.engine import DeviceTwin, TwinProperty, TwinValue
from twin.errors import InvalidManifest
from twin.manifests import load_manifests
from twin.models import Device


@pytest.mark.parametrize(
    ("value", "wrapper", "decoded"),
    [
        ("192.168.1.20", "google.protobuf.StringValue", "192.168.1.20"),
        ("", "google.protobuf.StringValue", ""),
        (True, "google.protobuf.BoolValue", True),
        (False, "google.protobuf.BoolValue", False),
        # Every YAML number is a float32, as KubeEdge's edge sends it after its JSON round trip...
        (502, "google.protobuf.FloatValue", 502.0),
        (-16777216, "google.protobuf.FloatValue", -16777216.0),
        (0.1, "google.protobuf.FloatValue", pytest.approx(0.1)),
        (1e39, "google.protobuf.FloatValue", float("inf")),
        # ...but an integer a float32 cannot hold is not rounded: it goes as an Int64Value.
        (16777217, "google.protobuf.Int64Value", 16777217),
        (4294967295, "google.protobuf.Int64Value", 4294967295),
        (-(2**63), "google.protobuf.Int64Value", -(2**63)),
    ],
)
def test_config_values_travel_as_kubeedge_packs_them(value: object, wrapper: str, decoded: object) -> None:
    packed = encode_config_value(value)
    assert packed.type_url == f"type.googleapis.com/{wrapper}"
    assert decode_config_value(packed) == decoded


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], None, 2**64])
def test_values_that_cannot_travel_are_refused(value: object) -> None:
    with pytest.raises(TypeError, match="cannot travel over DMI"):
        encode_config_value(value)


def test_int32_values_from_other_edges_decode_too() -> None:
    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.Int32Value(value=7))
    assert decode_config_value(packed) == 7
    packed.Pack(wrappers_pb2.DoubleValue(value=7.0))  # the framework does not decode these
    with pytest.raises(ValueError, match="DoubleValue"):
        decode_config_value(packed)


def _boiler(**spec: Any) -> tuple[Device, Any]:
    manifests = load_manifests([DMI_DEVICES])
    device = manifests.devices["default/boiler"]
    if spec:
        body = device.model_dump(mode="json")
        body["spec"].update(spec)
        device = Device.model_validate(body)
    return device, manifests.models["default/boiler-model"]


def test_messages_a_framework_mapper_dereferences_are_always_there_even_empty() -> None:
    device, model = _boiler(protocol={}, properties=[{"name": "mode"}])
    message = device_message(device, model, None)
    assert message.spec.HasField("protocol") and message.spec.protocol.HasField("configData")
    assert message.HasField("status")
    (prop,) = message.spec.properties
    assert prop.HasField("desired") and prop.desired.value == ""
    assert prop.HasField("visitors") and prop.visitors.HasField("configData")
    assert not prop.HasField("pushMethod")  # a pointer KubeEdge leaves nil too
    # Survives the wire.
    again = type(message).FromString(message.SerializeToString())
    assert again.spec.properties[0].HasField("desired")


def test_the_twins_desired_value_wins_over_the_manifests() -> None:
    device, model = _boiler()
    twin = DeviceTwin("default/boiler", {"target": TwinProperty(expected=TwinValue("55", 1))})
    message = device_message(device, model, twin)
    target = next(p for p in message.spec.properties if p.name == "target")
    assert (target.desired.value, dict(target.desired.metadata)) == ("55", {"type": "int"})
    observed = next(t for t in message.status.twins if t.propertyName == "target")
    assert observed.observedDesired.value == "55"  # what mappers of older framework versions read
    assert device_message(device, model, None).spec.properties[1].desired.value == "40"


def test_push_methods_and_methods_travel_and_unreadable_ones_are_left_out() -> None:
    push = {"mqtt": {"address": "tcp://127.0.0.1:1883", "topic": "boiler", "qos": 1}, "dbMethod": {}}
    device, model = _boiler(
        properties=[
            {"name": "mode", "pushMethod": push},
            {"name": "target", "pushMethod": {"http": {"port": "x"}}},
        ],
        methods=[{"name": "reset", "description": "restart", "propertyNames": ["mode"], "extra": 1}],
    )
    message = device_message(device, model, None)
    mode, target = message.spec.properties
    assert (mode.pushMethod.mqtt.topic, mode.pushMethod.mqtt.qos) == ("boiler", 1)
    assert not target.HasField("pushMethod")
    assert [m.name for m in message.spec.methods] == ["reset"]


def test_configdata_that_cannot_travel_names_the_key() -> None:
    device, model = _boiler(protocol={"protocolName": "sim", "configData": {"serial": {"baud": 9600}}})
    with pytest.raises(InvalidManifest, match=r"spec.protocol.configData.serial: a dict cannot travel"):
        device_message(device, model, None)


def test_a_model_lists_every_property_with_its_rules() -> None:
    _, model = _boiler()
    message = model_message(model)
    assert (message.name, message.namespace) == ("boiler-model", "default")
    target = message.spec.properties[1]
    assert (target.name, target.type, target.accessMode, target.minimum, target.maximum) == (
        "target",
        "INT",
        "ReadWrite",
        "5",
        "90",
    )
