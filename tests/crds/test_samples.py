"""The sample manifests in crds/samples load into the twin and satisfy the CRD schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api_server.schema import apply_defaults, prune_unknown, validate
from tests.fixtures.apiserver import CRD_DIR, SAMPLES_DIR
from twin.manifests import load_manifests

SAMPLE_FILES = sorted(SAMPLES_DIR.glob("*.yaml"))


def _crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in CRD_DIR.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        version = crd["spec"]["versions"][0]
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_protocol_has_a_sample() -> None:
    names = {p.stem for p in SAMPLE_FILES}
    assert {"modbus-tcp", "modbus-rtu", "opcua", "ble", "gpio-led", "traffic-light"} <= names


def test_samples_load_with_the_twin_manifest_loader() -> None:
    manifests = load_manifests([SAMPLES_DIR])
    assert len(manifests.devices) == len(SAMPLE_FILES)
    assert len(manifests.models) == len(SAMPLE_FILES)
    for device in manifests.devices.values():
        assert device.spec.nodeName == "edge-node-1"
        assert device.model_key in manifests.models


def test_modbus_tcp_sample_points_at_the_local_simulator() -> None:
    manifests = load_manifests([SAMPLES_DIR / "modbus-tcp.yaml"])
    (device,) = manifests.devices.values()
    assert device.spec.protocol.configData == {
        "communicateMode": "TCP",
        "ip": "127.0.0.1",
        "port": 5020,
        "slaveID": 1,
    }
    visitor = device.spec.properties[0].visitors
    assert visitor is not None
    assert {"register", "offset", "limit", "scale", "isSwap", "isRegisterSwap", "dataType"} <= set(
        visitor.configData
    )


def test_modbus_rtu_sample_has_the_serial_settings() -> None:
    manifests = load_manifests([SAMPLES_DIR / "modbus-rtu.yaml"])
    (device,) = manifests.devices.values()
    assert {"serialPort", "baudRate", "dataBits", "parity", "stopBits", "slaveID"} <= set(
        device.spec.protocol.configData
    )


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_sample_passes_the_crd_schema_without_losing_fields(path: Path) -> None:
    schemas = _crd_schemas()
    for doc in _documents(path):
        original = yaml.safe_load(yaml.safe_dump(doc))
        schema = schemas[doc["kind"]]
        apply_defaults(schema, doc)
        assert prune_unknown(schema, doc) == []
        assert validate(schema, doc) == []
        assert doc == original


def test_crd_schema_names_the_field_of_a_bad_sample() -> None:
    schema = _crd_schemas()["Device"]
    doc = _documents(SAMPLES_DIR / "modbus-tcp.yaml")[1]
    doc["spec"]["properties"][0]["collectCycle"] = "fast"
    del doc["spec"]["deviceModelRef"]
    fields = {cause.field for cause in validate(schema, doc)}
    assert fields == {"spec.properties[0].collectCycle", "spec.deviceModelRef"}
