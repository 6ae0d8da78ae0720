"""Loading Device/DeviceModel YAML: KubeEdge manifests load unchanged, bad ones are named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetwin.settings import SAMPLES
from tests.fixtures.twin import SAMPLE_DEVICES
from twin.errors import InvalidManifest
from twin.manifests import load_manifests
from twin.models import PropertyType, cycle_seconds

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: m}
spec:
  protocol: modbus
  properties:
    - {name: temp, type: INT, accessMode: ReadWrite, minimum: 0, maximum: 100}
"""

DEVICE = """
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: d}
spec:
  deviceModelRef: {name: m}
  nodeName: n1
  protocol: {protocolName: modbus, configData: {ip: 127.0.0.1, port: 502, slaveID: 1}}
  properties:
    - name: temp
      collectCycle: 10000000000
      visitors: {protocolName: modbus, configData: {register: HoldingRegister, offset: 2, limit: 1}}
"""


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_samples_and_test_devices_load() -> None:
    assert len(load_manifests([SAMPLES]).devices) >= 6
    assert set(load_manifests([SAMPLE_DEVICES]).devices) == {"default/thermostat", "plant/boiler"}


def test_a_folder_with_several_documents_loads_and_unknown_upstream_fields_are_kept(tmp_path: Path) -> None:
    write(tmp_path, MODEL + "---\n" + DEVICE.replace("nodeName: n1", "nodeName: n1\n  futureField: 7"))
    write(tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n", "ns.yml")
    manifests = load_manifests([tmp_path])
    device = manifests.devices["default/d"]
    assert device.spec.model_extra == {"futureField": 7}
    prop = manifests.models["default/m"].spec.properties[0]
    assert (prop.type, prop.minimum, prop.maximum) == (PropertyType.INT, "0", "100")
    assert device.spec.properties[0].visitors is not None
    assert device.spec.properties[0].visitors.configData["offset"] == 2


def test_legacy_nanosecond_cycles_are_recognised() -> None:
    assert cycle_seconds(10_000_000_000) == 10.0
    assert cycle_seconds(1500) == 1.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Device\n  bad: [", "not valid YAML"),
        (
            DEVICE.replace("deviceModelRef: {name: m}", "deviceModelRef: {}"),
            "Device default/d: spec.deviceModelRef.name",
        ),
        (MODEL.replace("type: INT", "type: COLOUR"), "DeviceModel default/m: spec.properties.0.type"),
        (
            MODEL + "---\n" + DEVICE.replace("name: temp\n      collect", "name: pressure\n      collect"),
            "no property 'pressure'",
        ),
        (DEVICE, "no DeviceModel default/m"),
        ("- just\n- a list\n", "must be a mapping"),
        (MODEL.replace("- {name: temp,", "- {name: temp, type: INT}\n    - {name: temp,"), "appears twice"),
    ],
)
def test_bad_manifests_name_the_file_the_object_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidManifest, match=message) as caught:
        load_manifests([path])
    if "no DeviceModel" not in message and "no property" not in message:
        assert str(path) in str(caught.value)


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match="no such file"):
        load_manifests([tmp_path / "nope.yaml"])
