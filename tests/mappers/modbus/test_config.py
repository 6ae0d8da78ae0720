"""Modbus configData as KubeEdge manifests write it, and the mistakes that must be caught."""

from __future__ import annotations

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
    assert c.bus_key == "tcp:10.0.0.5:5020"
    assert c.frame_gap_seconds == 0.0


def test_rtu_config_and_its_inter_frame_gap() -> None:
    c = ModbusConfig.model_validate(
        {"serialPort": "/dev/ttyUSB0", "baudRate": 9600, "parity": "even", "stopBits": 1, "slaveID": 2}
    )
    assert (c.mode, c.parity, c.bus_key) == ("RTU", "E", "serial:/dev/ttyUSB0")
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
    assert (v.dataType, v.valueOffset, v.writeMultiple) == (DataType.FLOAT32, -40.0, True)


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
