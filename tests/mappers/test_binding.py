"""Device + DeviceModel -> what a plugin sees: types, access, cycles, merged and validated configs."""

from __future__ import annotations

import logging

import pytest

from mappers.binding import bind_device
from mappers.modbus.config import ModbusConfig, ModbusVisitor
from mappers.modbus.decoding import RegisterKind
from mappers.modbus.plugin import ModbusMapper
from mappers.virtual import VirtualMapper
from tests.mappers.builders import device, model
from twin.errors import InvalidManifest
from twin.models import Device, DeviceModel, PropertyType

TCP = {"ip": "127.0.0.1", "port": 502, "slaveID": 1}
HOLD = {"register": "HoldingRegister", "offset": 0}


def test_property_type_access_and_cycles_come_from_model_and_device() -> None:
    mod = model("m", "modbus", {"temp": "FLOAT", "target": "INT"}, read_only=("temp",))
    dev = device(
        "d",
        "m",
        "modbus",
        TCP,
        {"temp": HOLD, "target": {**HOLD, "offset": 1}},
        collect_ms=250,
        report_ms=2000,
    )
    binding = bind_device(dev, mod, ModbusMapper)
    temp, target = binding.device.properties
    assert (temp.type, temp.writable, temp.collect_cycle, temp.report_cycle) == (
        PropertyType.FLOAT,
        False,
        0.25,
        2.0,
    )
    assert (target.type, target.writable) == (PropertyType.INT, True)
    assert isinstance(binding.device.config, ModbusConfig)
    assert isinstance(target.config, ModbusVisitor) and target.config.offset == 1


def test_legacy_nanosecond_cycles_and_zero_cycle_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    mod = model("m", "virtual", {"a": "INT", "b": "INT"})
    dev = device("d", "m", "virtual", {}, {"a": {}}, collect_ms=10_000_000_000)
    dev2 = device("d2", "m", "virtual", {}, {"b": {}}, collect_ms=0)
    (a,) = bind_device(dev, mod, VirtualMapper).device.properties
    (b,) = bind_device(dev2, mod, VirtualMapper, default_collect_cycle=3.0).device.properties
    assert (a.collect_cycle, b.collect_cycle) == (10.0, 3.0)
    assert "nanoseconds" in caplog.text


def test_model_protocol_config_and_visitors_are_overridden_key_by_key_by_the_device() -> None:
    mod = DeviceModel.model_validate(
        {
            "metadata": {"name": "m"},
            "spec": {
                "protocol": "modbus",
                "protocolConfigData": {"ip": "10.0.0.9", "port": 1502, "slaveID": 4},
                "properties": [
                    {
                        "name": "temp",
                        "type": "FLOAT",
                        "visitors": {"configData": {"register": "InputRegister", "offset": 7, "scale": 0.1}},
                    }
                ],
            },
        }
    )
    dev = Device.model_validate(
        {
            "metadata": {"name": "d"},
            "spec": {
                "deviceModelRef": {"name": "m"},
                "protocol": {"protocolName": "modbus", "configData": {"ip": "127.0.0.1"}},
                "properties": [
                    {"name": "temp", "visitors": {"protocolName": "modbus", "configData": {"offset": 8}}}
                ],
            },
        }
    )
    bound = bind_device(dev, mod, ModbusMapper).device
    assert (bound.config.ip, bound.config.port, bound.config.slaveID) == ("127.0.0.1", 1502, 4)
    visitor = bound.properties[0].config
    assert (visitor.kind, visitor.offset, visitor.scale) == (RegisterKind.INPUT, 8, 0.1)


def test_bad_visitor_leaves_out_only_its_property() -> None:
    mod = model("m", "modbus", {"good": "INT", "bad": "INT"})
    dev = device("d", "m", "modbus", TCP, {"good": HOLD, "bad": {"register": "NoSuchRegister"}})
    binding = bind_device(dev, mod, ModbusMapper)
    assert [p.name for p in binding.device.properties] == ["good"]
    assert len(binding.problems) == 1 and binding.problems[0].startswith("bad: visitors.configData")


def test_bad_connection_config_makes_the_device_unusable_with_the_field_named() -> None:
    mod = model("m", "modbus", {"a": "INT"})
    dev = device("d", "m", "modbus", {"communicateMode": "RTU"}, {"a": HOLD})
    with pytest.raises(
        InvalidManifest, match=r"default/d: spec\.protocol\.configData for modbus: .*serialPort"
    ):
        bind_device(dev, mod, ModbusMapper)
