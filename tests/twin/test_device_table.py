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
    other = DeviceTable.of({"default/thermostat": reordered})
    assert other.json("default/thermostat") != table.json("default/thermostat")
    assert table.holds("default/thermostat", other, lambda: reordered)


def test_a_changed_or_unknown_device_is_not_held() -> None:
    meta = THERMOSTAT.metadata.model_copy(update={"labels": {"room": "kitchen"}})
    changed = THERMOSTAT.model_copy(update={"metadata": meta})
    table = DeviceTable.of({"default/thermostat": THERMOSTAT})
    other = DeviceTable.of({"default/thermostat": changed, "default/other": THERMOSTAT})
    assert not table.holds("default/thermostat", other, lambda: changed)
    assert not table.holds("default/other", other, lambda: THERMOSTAT)


def test_an_equal_device_is_recognised_as_held_without_being_built() -> None:
    table, again = DeviceTable.of(SAMPLES.devices), DeviceTable.of(SAMPLES.devices)

    def never() -> Device:
        raise AssertionError("an equal JSON needs no model")

    assert all(table.holds(device_id, again, never) for device_id in SAMPLES.devices)


def test_a_copy_shares_the_devices_and_changes_apart() -> None:
    table = DeviceTable.of(SAMPLES.devices)
    copy = table.copy()
    copy.pop("plant/boiler")
    copy.put_json("default/again", table.json("default/thermostat"))
    assert "plant/boiler" in table and "default/again" not in table
    assert copy["default/again"] == THERMOSTAT

    assert copy.stamp("default/thermostat") is table.stamp("default/thermostat")


def test_a_stamp_changes_when_the_device_is_put_again() -> None:
    table = DeviceTable.of({"default/thermostat": THERMOSTAT})
    stamp = table.stamp("default/thermostat")
    assert table.stamp("default/thermostat") is stamp
    table.put("default/thermostat", THERMOSTAT)
    assert table.stamp("default/thermostat") is not stamp


def test_an_adopted_device_is_the_same_entry() -> None:
    table, other = DeviceTable.of(SAMPLES.devices), DeviceTable()
    other.adopt("plant/boiler", table)
    assert other.stamp("plant/boiler") is table.stamp("plant/boiler")
    assert other["plant/boiler"] == SAMPLES.devices["plant/boiler"]


def test_devices_unlike_the_first_one_held_read_back_whole() -> None:
    # The packing dictionary is the first Device JSON the process held: any other Device, however
    # unlike it (long names, unicode, another protocol), reads back byte for byte.
    document = THERMOSTAT.model_dump(mode="json")
    document["metadata"]["name"] = "unlike"
    document["metadata"]["annotations"] = {"note": "ü-" + "x" * 20_000}  # beyond the 8 KB window
    document["metadata"]["labels"] = {f"k{i}": "välue " * 20 for i in range(50)}
    document["spec"]["protocol"] = {"protocolName": "opcua", "configData": {"url": "opc.tcp://h:4840/ä"}}
    unlike = Device.model_validate(document)
    table = DeviceTable.of({**SAMPLES.devices, "default/unlike": unlike})
    assert table.json("default/unlike") == encode_device(unlike)
    assert table["default/unlike"] == unlike
    assert all(table.json(i) == encode_device(d) for i, d in SAMPLES.devices.items())
