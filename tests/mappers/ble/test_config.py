"""BLE configData as KubeEdge users write it, the extras, and the mistakes that get a clear reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mappers.binding import bind_device
from mappers.ble.config import (
    ADAPTER_ENV,
    DEFAULT_MAX_CONNECTIONS,
    MAX_CONNECTIONS_ENV,
    BleConfig,
    BleVisitor,
    normalize_uuid,
    parse_bytes,
)
from mappers.ble.plugin import BleMapper
from twin.manifests import load_manifests

SAMPLE = Path(__file__).resolve().parents[3] / "crds" / "samples" / "ble.yaml"


def test_the_sample_device_binds_with_every_property() -> None:
    defs = load_manifests([SAMPLE])
    (device,) = defs.devices.values()
    binding = bind_device(device, defs.models[device.model_key], BleMapper)
    assert binding.problems == ()
    config = binding.device.config
    assert (config.macAddress, config.adapter_name) == ("A4:C1:38:00:00:01", "simulated")
    temperature = binding.device.property("temperature")
    assert temperature is not None
    layout = temperature.config.layout
    assert (layout.start, layout.end, layout.little, layout.signed, layout.scale) == (0, 1, True, True, 0.01)
    display = binding.device.property("display")
    assert display is not None and display.config.mapped_bytes("true") == b"\x01"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2a19", "00002a19-0000-1000-8000-00805f9b34fb"),
        ("0x2A19", "00002a19-0000-1000-8000-00805f9b34fb"),
        ("12345678", "12345678-0000-1000-8000-00805f9b34fb"),
        ("f000aa0104514000b000000000000000", "f000aa01-0451-4000-b000-000000000000"),
        ("EBE0CCC1-7A0A-4B0C-8A1A-6FF2997DA3A6", "ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6"),
    ],
)
def test_uuids_are_normalized_like_bleak_does(text: str, expected: str) -> None:
    assert normalize_uuid(text) == expected


@pytest.mark.parametrize("text", ["temperature", "2a1", "ebe0ccc1-7a0a-4b0c-8a1a", "zz19"])
def test_a_characteristic_uuid_that_is_no_uuid_is_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="not a UUID"):
        BleVisitor.model_validate({"characteristicUUID": text})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1], b"\x01"),  # KubeEdge's samples: "ON": [1]
        ([0, 255], b"\x00\xff"),
        ("01", b"\x01"),
        ("0x0102", b"\x01\x02"),
        ("01 02", b"\x01\x02"),
        ("AQ==", b"\x01"),  # Go's encoding of a []byte
        (7, b"\x07"),
    ],
)
def test_data_write_values_in_the_forms_manifests_use(value: object, expected: bytes) -> None:
    assert parse_bytes(value) == expected


@pytest.mark.parametrize("value", [[256], [-1], ["a"], "xyz!", True, 3.5])
def test_data_write_values_that_are_not_bytes_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"bytes|base64"):
        parse_bytes(value)


def test_data_write_matches_the_exact_value_then_ignoring_case() -> None:
    visitor = BleVisitor.model_validate(
        {"characteristicUUID": "fff1", "dataWrite": {"ON": [1], "on": [2], "OFF": [0]}}
    )
    assert visitor.mapped_bytes("on") == b"\x02"
    assert visitor.mapped_bytes("Off") == b"\x00"
    assert visitor.mapped_bytes("blink") is None


BAD_CONVERTERS: list[tuple[dict[str, Any], str]] = [
    ({"scale": 0}, "scale cannot be 0"),
    ({"shiftLeft": 1, "shiftRight": 1}, "not both"),
    ({"endIndex": 1, "length": 2}, "not both"),
    ({"startIndex": 1, "endIndex": 0, "byteOrder": "big"}, "little-endian"),
    ({"orderOfOperations": [{"operationType": "Divide", "operationValue": 0}]}, "Divide by 0"),
    ({"orderOfOperations": [{"operationType": "Modulo", "operationValue": 2}]}, "operationType"),
    ({"dataType": "float", "length": 3}, "2, 4 or 8"),
    ({"dataType": "float", "shiftRight": 2}, "integers"),
    ({"length": 9}, "at most 8 bytes"),
    ({"dataType": "decimal"}, "dataType"),
    ({"encoding": "klingon"}, "encoding"),
    ({"startIndex": -1}, "startIndex"),
    ({"byteOrder": "middle"}, "byteOrder"),
]


@pytest.mark.parametrize(("converter", "reason"), BAD_CONVERTERS)
def test_data_converter_mistakes_are_named(converter: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        BleVisitor.model_validate({"characteristicUUID": "2a19", "dataConverter": converter})


def test_device_needs_an_address_or_a_name() -> None:
    with pytest.raises(ValidationError, match="set macAddress"):
        BleConfig.model_validate({})
    with pytest.raises(ValidationError, match="not a Bluetooth address"):
        BleConfig.model_validate({"macAddress": "A4:C1:38"})
    by_name = BleConfig.model_validate({"localName": "ET-THERMO-01"})
    assert by_name.target == "the peripheral named 'ET-THERMO-01'"
    assert BleConfig.model_validate({"macAddress": "a4-c1-38-00-00-01"}).macAddress == "A4:C1:38:00:00:01"


def test_adapter_and_slots_default_to_the_environment_then_to_the_system(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ADAPTER_ENV, raising=False)
    monkeypatch.delenv(MAX_CONNECTIONS_ENV, raising=False)
    config = BleConfig.model_validate({"macAddress": "A4:C1:38:00:00:01"})
    assert (config.adapter_name, config.slot_limit) == ("", DEFAULT_MAX_CONNECTIONS)
    monkeypatch.setenv(ADAPTER_ENV, "simulated")
    monkeypatch.setenv(MAX_CONNECTIONS_ENV, "1")
    assert (config.adapter_name, config.slot_limit) == ("simulated", 1)
    own = BleConfig.model_validate(
        {"macAddress": "A4:C1:38:00:00:01", "adapter": "hci1", "maxConnections": 5}
    )
    assert (own.adapter_name, own.slot_limit) == ("hci1", 5)


def test_a_bad_slot_count_in_the_environment_is_logged_and_the_default_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(MAX_CONNECTIONS_ENV, "lots")
    config = BleConfig.model_validate({"macAddress": "A4:C1:38:00:00:01"})
    assert config.slot_limit == DEFAULT_MAX_CONNECTIONS
    assert f"{MAX_CONNECTIONS_ENV}='lots' is not a whole number" in caplog.text
