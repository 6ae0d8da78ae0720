"""The node's Devices held as JSON: each read gives back a Device equal to the one put in."""

from __future__ import annotations

import orjson

from tests.fixtures.twin import SAMPLE_DEVICES
from twin.device_table import DeviceTable, encode_device
from twin.manifests import load_manifests
from twin.models import Device

SAMPLES = load_manifests([SAMPLE_DEVICES])
THERMOSTAT = SAMPLES.devices["default/thermostat"]


def test_a_device_read_from_the_table_equals_the_one_put_in() -> None:
    table = DeviceTable.of(SAMPLES.devices)
    assert table == SAMPLES.devices
    assert table["default/thermostat"] == THERMOSTAT
    assert table["default/thermostat"] is not THERMOSTAT  # built again from its JSON
    assert set(table) == set(SAMPLES.devices) and len(table) == len(SAMPLES.devices)


def test_the_document_of_a_device_is_its_json_dump() -> None:
    table = DeviceTable.of(SAMPLES.devices)
    assert table.document("default/thermostat") == THERMOSTAT.model_dump(mode="json")
    assert orjson.loads(table.json("plant/boiler")) == SAMPLES.devices["plant/boiler"].model_dump(mode="json")


def test_a_held_device_is_the_same_object_until_put_again() -> None:
    table = DeviceTable()
    table.put("default/thermostat", THERMOSTAT, hold=True)
    assert table["default/thermostat"] is THERMOSTAT
    assert table.json_of("default/thermostat", THERMOSTAT) is table.json("default/thermostat")
    table.put("default/thermostat", THERMOSTAT)
    assert table["default/thermostat"] is not THERMOSTAT


def test_an_equal_device_written_differently_is_recognised_as_held() -> None:
    def with_config(config: dict[str, object]) -> Device:
        document = THERMOSTAT.model_dump(mode="json")
        document["spec"]["protocol"]["configData"] = config
        return Device.model_validate(document)

    held, reordered = (
        with_config({"ip": "10.0.0.2", "port": 502}),
        with_config({"port": 502.0, "ip": "10.0.0.2"}),
    )
    table = DeviceTable.of({"default/thermostat": held})
    json = encode_device(reordered)
    assert json != table.json("default/thermostat")
    assert table.holds("default/thermostat", json, lambda: reordered)


def test_a_changed_or_unknown_device_is_not_held() -> None:
    meta = THERMOSTAT.metadata.model_copy(update={"labels": {"room": "kitchen"}})
    changed = THERMOSTAT.model_copy(update={"metadata": meta})
    table = DeviceTable.of({"default/thermostat": THERMOSTAT})
    assert not table.holds("default/thermostat", encode_device(changed), lambda: changed)
    assert not table.holds("default/other", encode_device(THERMOSTAT), lambda: THERMOSTAT)


def test_a_copy_shares_the_devices_and_changes_apart() -> None:
    table = DeviceTable.of(SAMPLES.devices)
    copy = table.copy()
    copy.pop("plant/boiler")
    copy.put_json("default/again", table.json("default/thermostat"))
    assert "plant/boiler" in table and "default/again" not in table
    assert copy["default/again"] == THERMOSTAT
