"""Modbus configData as KubeEdge manifests write it, and the mistakes that must be caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mappers.modbus.config import ModbusConfig, ModbusVisitor
from mappers.modbus.decoding import DataType, RegisterKind


def test_kubeedge_tcp_config_with_string_numbers() -> None:
    c = ModbusConfig.model_validate(
        {"communicateMode": "tcp", "ip": "10.0.0.5", "port": "5020", "slaveID": "3"}
    )
    assert (c.mode, c.ip, c.port, c.slaveID) == ("TCP", "10.0.0.5", 5020, 3)
    assert c.bus_key == "modbus:tcp:10.0.0.5:5020"
    assert c.frame_gap_seconds == 0.0


def test_rtu_config_and_its_inter_frame_gap() -> None:
    c = ModbusConfig.model_validate(
        {"serialPort": "/dev/ttyUSB0", "baudRate": 9600, "parity": "even", "stopBits": 1, "slaveID": 2}
    )
    assert (c.mode, c.parity, c.bus_key) == ("RTU", "E", "modbus:serial:/dev/ttyUSB0")
    assert c.frame_gap_seconds == pytest.approx(3.5 * 11 / 9600)
    fast = ModbusConfig.model_validate({"serialPort": "/dev/ttyUSB0", "baudRate": 115200})
    assert fast.frame_gap_seconds == pytest.approx(0.00175)
    explicit = ModbusConfig.model_validate({"serialPort": "/dev/ttyUSB0", "frameGap": 10})
    assert explicit.frame_gap_seconds == pytest.approx(0.01)


@pytest.mark.parametrize(
    "data",
    [
        {"communicateMode": "RTU"},
        {"communicateMode": "TCP"},
        {"ip": "1.2.3.4", "slaveID": 300},
        {"serialPort": "/dev/ttyS0", "parity": "mark"},
        {"ip": "1.2.3.4", "maxRegisters": 200},
    ],
)
def test_unusable_device_config_is_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModbusConfig.model_validate(data)


def test_kubeedge_visitor_fields() -> None:
    v = ModbusVisitor.model_validate(
        {
            "register": "HoldingRegister",
            "offset": 2,
            "limit": 2,
            "scale": 0.1,
            "isSwap": True,
            "isRegisterSwap": True,
        }
    )
    assert (v.kind, v.offset, v.limit, v.scale, v.isSwap, v.isRegisterSwap) == (
        RegisterKind.HOLDING,
        2,
        2,
        0.1,
        True,
        True,
    )


def test_visitor_extras() -> None:
    v = ModbusVisitor.model_validate(
        {
            "register": "InputRegister",
            "offset": 0,
            "dataType": "float",
            "valueOffset": -40,
            "writeMultiple": True,
        }
    )
    assert (v.data_type, v.valueOffset, v.writeMultiple) == (DataType.FLOAT32, -40.0, True)


@pytest.mark.parametrize(
    "data",
    [
        {"offset": 1},
        {"register": "MagicRegister"},
        {"register": "HoldingRegister", "offset": -1},
        {"register": "HoldingRegister", "limit": 200},
        {"register": "HoldingRegister", "dataType": "int32", "limit": 1},
        {"register": "HoldingRegister", "scale": 0},
    ],
)
def test_bad_visitor_is_rejected(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModbusVisitor.model_validate(data)


@pytest.mark.parametrize(
    ("data_type", "limit", "exact"),
    [
        ("int", 1, DataType.INT16),
        ("int", 2, DataType.INT32),
        ("INT", 4, DataType.INT64),
        ("uint", 2, DataType.UINT32),
        ("float", 2, DataType.FLOAT32),
        ("float", 1, DataType.INT16),
        ("double", 4, DataType.FLOAT64),
        ("float64", None, DataType.FLOAT64),
        ("boolean", None, DataType.BOOL),
    ],
)
def test_kubeedge_generic_data_types_take_their_size_from_limit(
    data_type: str, limit: int | None, exact: DataType
) -> None:
    visitor = ModbusVisitor.model_validate(
        {"register": "HoldingRegister", "dataType": data_type, "limit": limit}
    )
    assert visitor.data_type is exact


def test_unknown_data_type_names_the_choices() -> None:
    with pytest.raises(ValidationError, match="unknown dataType 'quad'"):
        ModbusVisitor.model_validate({"register": "HoldingRegister", "dataType": "quad"})


def test_the_modbus_samples_bind_without_problems() -> None:
    from mappers.binding import bind_device
    from mappers.modbus.plugin import ModbusMapper
    from twin.manifests import load_manifests

    samples = Path(__file__).resolve().parents[3] / "crds" / "samples"
    loaded = load_manifests([samples / "modbus-tcp.yaml", samples / "modbus-rtu.yaml"])
    codecs = {}
    for dev in loaded.devices.values():
        binding = bind_device(dev, loaded.models[dev.model_key], ModbusMapper)
        assert binding.problems == ()
        for prop in binding.device.properties:
            codecs[(dev.metadata.name, prop.name)] = (prop.config.data_type, prop.config.isRegisterSwap)
    assert codecs[("modbus-thermostat", "temperature")] == (DataType.INT16, False)
    assert codecs[("modbus-energy-meter", "energy")] == (DataType.INT32, True)
    assert codecs[("modbus-energy-meter", "relay")] == (DataType.BOOL, False)
