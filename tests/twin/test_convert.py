"""v1alpha2/v1alpha1 manifests shaped like KubeEdge's published demos, rewritten as v1beta1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.twin import DATA
from twin.convert import Converted, Source, convert
from twin.errors import InvalidManifest
from twin.manifests import load_manifests
from twin.models import AccessMode, PropertyType

KUBEEDGE = DATA / "kubeedge-v1alpha2"
DEMOS = sorted(KUBEEDGE.glob("*.yaml"))


def sources(*paths: Path) -> list[Source]:
    return [
        Source(f"{path.name} (document {i + 1})", doc)
        for path in paths
        for i, doc in enumerate(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    ]


def converted(name: str, **kw: Any) -> Converted:
    return convert(sources(KUBEEDGE / name), **kw)


def by_name(result: Converted, kind: str, name: str) -> dict[str, Any]:
    (doc,) = (d for d in result.documents if d["kind"] == kind and d["metadata"]["name"] == name)
    return doc


def loads_back(result: Converted, tmp_path: Path) -> Any:
    out = tmp_path / "converted.yaml"
    out.write_text(yaml.safe_dump_all(result.documents, sort_keys=False))
    return load_manifests([out])


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_every_demo_converts_to_v1beta1_that_the_twin_loads(path: Path, tmp_path: Path) -> None:
    result = convert(sources(path))
    assert {d["apiVersion"] for d in result.documents} == {"devices.kubeedge.io/v1beta1"}
    manifests = loads_back(result, tmp_path)
    assert len(manifests.models) == result.models and len(manifests.devices) == result.devices


def test_the_led_demo_keeps_its_property_types_and_desired_value(tmp_path: Path) -> None:
    result = converted("led-light.yaml", node="edge-node-1")
    manifests = loads_back(result, tmp_path)
    model = manifests.models["default/led-light"]
    power, pin = model.spec.properties
    assert (power.name, power.type, power.accessMode) == (
        "power-status",
        PropertyType.STRING,
        AccessMode.READ_WRITE,
    )
    assert (pin.name, pin.type, pin.accessMode) == ("gpio-pin-number", PropertyType.INT, AccessMode.READ_ONLY)
    device = manifests.devices["default/led-light-instance-01"]
    assert device.spec.nodeName == "edge-node-1"
    assert device.spec.deviceModelRef.name == "led-light"
    assert device.metadata.labels == {"description": "LEDLight", "model": "led-light"}
    (prop,) = device.spec.properties
    assert prop.desired is not None and prop.desired.value == "OFF"


def test_the_led_demo_lists_what_v1beta1_cannot_hold(tmp_path: Path) -> None:
    notes = converted("led-light.yaml").notes
    assert any(
        n.startswith(
            "DeviceModel default/led-light: spec.properties[gpio-pin-number].type.int.defaultValue '18'"
        )
        for n in notes
    )
    assert any(n.startswith("Device default/led-light-instance-01: spec.protocol: none given") for n in notes)
    assert any(n.startswith("DeviceModel default/led-light: spec.protocol:") for n in notes)
    assert all(n.endswith(("not carried over", "by hand")) or "protocolName gpio" in n for n in notes)


def test_the_node_comes_from_a_selector_naming_one_node() -> None:
    device = by_name(converted("led-light.yaml"), "Device", "led-light-instance-01")
    assert device["spec"]["nodeName"] == "edge-node1"
    plc = by_name(converted("opcua-and-bluetooth.yaml"), "Device", "plc")  # kubernetes.io/hostname In
    assert plc["spec"]["nodeName"] == "edge-node-1"


def test_a_selector_naming_several_nodes_is_reported_not_guessed() -> None:
    result = converted("opcua-and-bluetooth.yaml")
    assert "nodeName" not in by_name(result, "Device", "boiler")["spec"]
    assert any(
        n.startswith("Device default/boiler: spec.nodeSelector:") and "edge-a, edge-b" in n
        for n in result.notes
    )
    forced = converted("opcua-and-bluetooth.yaml", node="edge-a")
    assert by_name(forced, "Device", "boiler")["spec"]["nodeName"] == "edge-a"
    assert not any("nodeSelector" in n for n in forced.notes)


def test_the_traffic_light_v1alpha1_demo_drops_reported_values_by_name() -> None:
    result = converted("traffic-light.yaml")
    device = by_name(result, "Device", "traffic-light-instance-01")
    assert [(p["name"], p["desired"]["value"]) for p in device["spec"]["properties"]] == [
        ("red", "OFF"),
        ("yellow", "OFF"),
        ("green", "OFF"),
    ]
    for light in ("red", "yellow", "green"):
        assert (
            f"Device default/traffic-light-instance-01: status.twins[{light}].reported: reported values come "
            "from the device, not the manifest; not carried over"
        ) in result.notes


def test_modbus_tcp_and_rtu_become_kubeedge_v1beta1_config_data() -> None:
    result = converted("modbus.yaml")
    tcp = by_name(result, "Device", "modbustcp-device")["spec"]
    assert tcp["protocol"] == {
        "protocolName": "modbus",
        "configData": {"communicateMode": "TCP", "ip": "192.168.33.1", "port": 502, "slaveID": 1},
    }
    temperature = tcp["properties"][0]
    assert temperature["name"] == "temperature" and temperature["collectCycle"] == 5000
    assert temperature["visitors"] == {
        "protocolName": "modbus",
        "configData": {
            "register": "CoilRegister",
            "offset": 0,
            "limit": 1,
            "scale": 1,
            "isSwap": True,
            "isRegisterSwap": True,
        },
    }
    assert tcp["properties"][1]["desired"]["value"] == "0"
    rtu = by_name(result, "Device", "modbusrtu-device")["spec"]
    assert rtu["protocol"]["configData"] == {
        "communicateMode": "RTU",
        "serialPort": "/dev/ttyS0",
        "baudRate": 9600,
        "dataBits": 8,
        "parity": "even",
        "stopBits": 1,
        "slaveID": 1,
        "serialType": "RS232",
    }
    assert rtu["properties"][0]["collectCycle"] == 10_000  # 10^10 ns, written as milliseconds
    model = by_name(result, "DeviceModel", "modbus-sample-model")["spec"]
    assert model["protocol"] == "modbus"
    assert model["properties"][0] == {
        "name": "temperature",
        "description": "temperature in degree celsius",
        "type": "INT",
        "accessMode": "ReadWrite",
        "maximum": "100",
        "unit": "degree celsius",
    }


def test_the_converted_modbus_device_binds_to_the_modbus_plugin(tmp_path: Path) -> None:
    from mappers.binding import bind_device
    from mappers.modbus.plugin import ModbusMapper

    manifests = loads_back(converted("modbus.yaml"), tmp_path)
    model = manifests.models["default/modbus-sample-model"]
    for device in manifests.devices.values():
        binding = bind_device(device, model, ModbusMapper)
        assert binding.problems == ()
        assert binding.device.config.slaveID == 1


def test_opcua_bluetooth_and_customized_protocols() -> None:
    result = converted("opcua-and-bluetooth.yaml")
    boiler = by_name(result, "Device", "boiler")
    assert boiler["spec"]["protocol"]["protocolName"] == "opcua"
    assert boiler["spec"]["protocol"]["configData"]["url"] == "opc.tcp://10.0.0.5:4840/boiler"
    assert boiler["spec"]["properties"][0]["visitors"]["configData"] == {
        "nodeID": "ns=2;s=Boiler.Temperature"
    }
    assert boiler["spec"]["properties"][1]["desired"] == {"value": "true"}
    assert "resourceVersion" not in boiler["metadata"] and "uid" not in boiler["metadata"]
    tag = by_name(result, "Device", "sensortag")["spec"]
    assert tag["protocol"] == {"protocolName": "ble", "configData": {"macAddress": "BC:6A:29:AE:CC:96"}}
    assert tag["properties"][1]["visitors"]["configData"]["dataWrite"] == {"ON": [1], "OFF": [0]}
    plc = by_name(result, "Device", "plc")["spec"]
    assert plc["protocol"] == {
        "protocolName": "canbus",
        "configData": {"interface": "can0", "collectTimeout": 500},
    }
    assert plc["properties"][0]["visitors"] == {
        "protocolName": "canbus",
        "configData": {"frameID": 0x120, "byteOrder": "little"},
    }
    assert by_name(result, "DeviceModel", "plc-model")["spec"]["protocol"] == "canbus"
    temperature = by_name(result, "DeviceModel", "boiler-model")["spec"]["properties"][0]
    assert (temperature["minimum"], temperature["maximum"]) == ("0", "120.5")


def test_what_has_no_place_in_v1beta1_is_named_one_line_each() -> None:
    notes = converted("opcua-and-bluetooth.yaml").notes
    expected = [
        "Device default/boiler: spec.data: v1beta1 has no such field; not carried over",
        "Device default/boiler: status.state: written by the system, not the manifest; not carried over",
        "Device default/boiler: metadata.uid, metadata.resourceVersion: set by the cluster",
        "Device default/boiler: spec.protocol.opcua.password: written into configData.password as it was",
        "DeviceModel default/boiler-model: spec.properties[valve].type.boolean.defaultValue 'false'",
    ]
    for start in expected:
        assert any(n.startswith(start) for n in notes), (start, notes)
    assert all("\n" not in n for n in notes)


def test_v1alpha1_model_visitors_move_to_the_devices_of_the_model() -> None:
    docs = [
        {
            "apiVersion": "devices.kubeedge.io/v1alpha1",
            "kind": "DeviceModel",
            "metadata": {"name": "meter-model"},
            "spec": {
                "properties": [{"name": "power", "type": {"int": {"accessMode": "ReadOnly"}}}],
                "propertyVisitors": [
                    {
                        "propertyName": "power",
                        "modbus": {"register": "InputRegister", "offset": 4, "limit": 1},
                    }
                ],
            },
        },
        {
            "apiVersion": "devices.kubeedge.io/v1alpha1",
            "kind": "Device",
            "metadata": {"name": "meter"},
            "spec": {
                "deviceModelRef": {"name": "meter-model"},
                "protocol": {"modbus": {"tcp": {"ip": "10.0.0.9", "port": 502, "slaveID": "3"}}},
            },
        },
    ]
    result = convert([Source(f"doc {i}", d) for i, d in enumerate(docs)], node="n1")
    meter = by_name(result, "Device", "meter")["spec"]
    assert meter["protocol"]["configData"] == {
        "communicateMode": "TCP",
        "ip": "10.0.0.9",
        "port": 502,
        "slaveID": 3,
    }
    assert meter["properties"] == [
        {
            "name": "power",
            "visitors": {
                "protocolName": "modbus",
                "configData": {"register": "InputRegister", "offset": 4, "limit": 1},
            },
        }
    ]
    assert "propertyVisitors" not in by_name(result, "DeviceModel", "meter-model")["spec"]


def test_other_documents_pass_unchanged() -> None:
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "light-mapper"}}
    current = {"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel", "metadata": {"name": "x"}}
    result = convert([Source("a", other), Source("b", current)])
    assert result.documents == [other, current]
    assert (result.models, result.devices, result.notes) == (0, 0, [])


def test_a_document_that_is_not_a_mapping_is_refused_by_place() -> None:
    with pytest.raises(
        InvalidManifest, match=r"^f.yaml \(document 2\): a manifest must be a mapping, got list"
    ):
        convert([Source("f.yaml (document 1)", {}), Source("f.yaml (document 2)", [1, 2])])


def test_an_old_device_without_a_model_reference_is_refused_naming_the_field() -> None:
    doc = {
        "apiVersion": "devices.kubeedge.io/v1alpha2",
        "kind": "Device",
        "metadata": {"name": "d"},
        "spec": {},
    }
    with pytest.raises(InvalidManifest, match=r"Device default/d: spec.deviceModelRef"):
        convert([Source("f.yaml (document 1)", doc)])
