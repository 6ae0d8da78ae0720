"""The Modbus plugin against real pymodbus servers: TCP on a free port, RTU over a pty pair."""

from __future__ import annotations

import math
from typing import Any

import pytest

from mappers.bus import Buses
from mappers.modbus.decoding import RegisterKind
from mappers.modbus.plugin import ModbusMapper
from mappers.plugin import MappedDevice
from tests.fixtures.modbus import RtuModbus, TcpModbus
from tests.mappers.builders import device, mapped, model
from twin.errors import DeviceRefused, DeviceUnreachable, OutOfRange, ReadOnlyProperty

H, IR, CO, DI = (RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)

TYPES = {
    "temp": "FLOAT",
    "count32": "INT",
    "level": "FLOAT",
    "energy": "DOUBLE",
    "label": "STRING",
    "neg": "INT",
    "swapped": "INT",
    "power": "BOOLEAN",
    "alarm": "BOOLEAN",
    "wide": "INT",
}
VISITORS: dict[str, dict[str, Any]] = {
    "temp": {"register": "HoldingRegister", "offset": 0, "limit": 1, "scale": 0.1},
    "count32": {"register": "HoldingRegister", "offset": 1, "limit": 2},
    "level": {"register": "HoldingRegister", "offset": 3, "limit": 2, "isRegisterSwap": True},
    "energy": {"register": "InputRegister", "offset": 0, "limit": 4},
    "label": {"register": "InputRegister", "offset": 4, "limit": 3},
    "neg": {"register": "HoldingRegister", "offset": 5, "limit": 1, "dataType": "int16"},
    "swapped": {"register": "HoldingRegister", "offset": 6, "dataType": "uint32", "isSwap": True},
    "power": {"register": "CoilRegister", "offset": 0},
    "alarm": {"register": "DiscreteInputRegister", "offset": 3},
    "wide": {"register": "HoldingRegister", "offset": 8, "limit": 4},
}


def plc(
    config: dict[str, Any], visitors: dict[str, dict[str, Any]] = VISITORS, **kw: Any
) -> MappedDevice[Any, Any]:
    types = {name: TYPES.get(name, "INT") for name in visitors}
    return mapped(
        device("plc", "plc-model", "modbus", config, visitors, **kw),
        model("plc-model", "modbus", types, read_only=("energy", "label", "alarm")),
        ModbusMapper,
    )


async def load_registers(sim: TcpModbus | RtuModbus, slave: int = 1) -> None:
    s = sim.sim
    await s.set(H, 0, [215], slave=slave)  # 21.5
    await s.set(H, 1, [0x0001, 0x86A0], slave=slave)  # 100000
    await s.set(H, 3, [0x0000, 0x41AC], slave=slave)  # 21.5 as float32, low word first
    await s.set(IR, 0, [0xC004, 0, 0, 0], slave=slave)  # -2.5 float64
    await s.set(IR, 4, [0x4142, 0x4300, 0], slave=slave)  # "ABC"
    await s.set(H, 5, [0xFF9C], slave=slave)  # -100
    await s.set(H, 6, [0x3412, 0x7856], slave=slave)  # 0x12345678 with bytes swapped
    await s.set(H, 8, [0, 0, 0, 42], slave=slave)
    await s.set(CO, 0, [True], slave=slave)
    await s.set(DI, 3, [True], slave=slave)


EXPECTED = {
    "temp": 21.5,
    "count32": 100000,
    "level": 21.5,
    "energy": -2.5,
    "label": "ABC",
    "neg": -100,
    "swapped": 0x12345678,
    "power": True,
    "alarm": True,
    "wide": 42,
}


async def test_every_type_is_read_over_tcp_with_one_request_per_table(modbus_tcp: TcpModbus) -> None:
    await load_registers(modbus_tcp)
    dev = plc(modbus_tcp.config())
    async with ModbusMapper(dev, Buses()) as mapper:
        before = modbus_tcp.slaves[1].requests
        values = await mapper.read_many(dev.properties)
        requests = modbus_tcp.slaves[1].requests - before
    assert values == EXPECTED
    assert requests == 4  # holding 0..11, input 0..6, coil 0, discrete input 3


async def test_forty_adjacent_properties_are_one_request_instead_of_forty(modbus_tcp: TcpModbus) -> None:
    await modbus_tcp.sim.set(H, 0, list(range(40)))
    visitors = {f"r{i}": {"register": "HoldingRegister", "offset": i, "limit": 1} for i in range(40)}
    dev = plc(modbus_tcp.config(), visitors)
    async with ModbusMapper(dev, Buses()) as mapper:
        start = modbus_tcp.slaves[1].requests
        block = await mapper.read_many(dev.properties)
        middle = modbus_tcp.slaves[1].requests
        single = {p.name: await mapper.read(p) for p in dev.properties}
        end = modbus_tcp.slaves[1].requests
    assert block == single == {f"r{i}": i for i in range(40)}
    assert (middle - start, end - middle) == (1, 40)


async def test_writes_use_single_and_multiple_register_and_coil_functions(modbus_tcp: TcpModbus) -> None:
    visitors = {
        "setpoint": {"register": "HoldingRegister", "offset": 10, "limit": 1, "scale": 0.1},
        "total": {"register": "HoldingRegister", "offset": 11, "limit": 2},
        "forced": {"register": "HoldingRegister", "offset": 13, "limit": 1, "writeMultiple": True},
        "power": {"register": "CoilRegister", "offset": 5},
        "energy": {"register": "InputRegister", "offset": 0, "limit": 4},
    }
    dev = plc(modbus_tcp.config(), visitors)
    prop = {p.name: p for p in dev.properties}
    async with ModbusMapper(dev, Buses()) as mapper:
        await mapper.write(prop["setpoint"], 22.5)
        await mapper.write(prop["total"], -70000)
        await mapper.write(prop["forced"], 7)
        await mapper.write(prop["power"], True)
        assert await mapper.read(prop["setpoint"]) == 22.5
        assert await mapper.read(prop["total"]) == -70000
        with pytest.raises(ReadOnlyProperty):
            await mapper.write(prop["energy"], 1.0)
        with pytest.raises(OutOfRange):
            await mapper.write(prop["setpoint"], 99999.0)
    assert await modbus_tcp.sim.get(H, 10, 4) == [225, 0xFFFE, 0xEE90, 7]
    assert await modbus_tcp.sim.get(CO, 5) == [1]


async def test_value_the_device_refuses_is_device_refused_with_the_exception_code(
    modbus_tcp: TcpModbus,
) -> None:
    # The fixture's slave accepts at most 1000 in holding register 50.
    dev = plc(modbus_tcp.config(), {"limited": {"register": "HoldingRegister", "offset": 50, "limit": 1}})
    async with ModbusMapper(dev, Buses()) as mapper:
        await mapper.write(dev.properties[0], 1000)
        with pytest.raises(DeviceRefused, match=r"exception 3 \(illegal data value\)"):
            await mapper.write(dev.properties[0], 1001)
        assert await mapper.read(dev.properties[0]) == 1000


async def test_refused_block_falls_back_to_reading_its_properties_one_by_one(modbus_tcp: TcpModbus) -> None:
    # Register 100 does not exist on the fixture's slave: a block 99..101 is refused.
    await modbus_tcp.sim.set(H, 99, [1])
    await modbus_tcp.sim.set(H, 101, [3])
    visitors = {
        "a": {"register": "HoldingRegister", "offset": 99, "limit": 1},
        "hole": {"register": "HoldingRegister", "offset": 100, "limit": 1},
        "b": {"register": "HoldingRegister", "offset": 101, "limit": 1},
    }
    dev = plc(modbus_tcp.config(), visitors)
    async with ModbusMapper(dev, Buses()) as mapper:
        first = await mapper.read_many(dev.properties)
        before = modbus_tcp.slaves[1].requests
        second = await mapper.read_many(dev.properties)
        requests = modbus_tcp.slaves[1].requests - before
    for values in (first, second):
        assert (values["a"], values["b"]) == (1, 3)
        assert isinstance(values["hole"], DeviceRefused)
    assert requests == 3


async def test_wrong_slave_id_is_refused_not_a_crash(modbus_tcp: TcpModbus) -> None:
    dev = plc(modbus_tcp.config(slave=7), {"temp": VISITORS["temp"]})
    async with ModbusMapper(dev, Buses()) as mapper:
        result = await mapper.read_many(dev.properties)
    assert isinstance(result["temp"], DeviceRefused)


async def test_stopped_server_is_unreachable_and_a_new_connection_recovers(modbus_tcp: TcpModbus) -> None:
    await modbus_tcp.sim.set(H, 0, [215])
    dev = plc(modbus_tcp.config(timeout=300), {"temp": VISITORS["temp"]})
    buses = Buses()
    async with ModbusMapper(dev, buses) as mapper:
        assert await mapper.read(dev.properties[0]) == 21.5
        await modbus_tcp.sim.stop()
        with pytest.raises(DeviceUnreachable):
            await mapper.read(dev.properties[0])
    with pytest.raises(DeviceUnreachable):
        async with ModbusMapper(dev, buses):
            pass
    await modbus_tcp.sim.start()
    await modbus_tcp.sim.set(H, 0, [230])
    async with ModbusMapper(dev, buses) as mapper:
        assert await mapper.read(dev.properties[0]) == 23.0
    assert f"modbus:tcp:127.0.0.1:{modbus_tcp.port}" not in buses


async def test_rtu_every_type_and_two_slaves_share_one_serial_line(modbus_rtu: RtuModbus) -> None:
    await load_registers(modbus_rtu, slave=1)
    await modbus_rtu.sim.set(H, 0, [-40 & 0xFFFF], slave=2)
    one = plc(modbus_rtu.config(slave=1))
    two = plc(modbus_rtu.config(slave=2), {"temp": VISITORS["temp"]})
    buses = Buses()
    async with ModbusMapper(one, buses) as first, ModbusMapper(two, buses) as second:
        bus = first._bus
        assert bus is not None and bus is second._bus and bus.users == 2
        assert await first.read_many(one.properties) == EXPECTED
        assert await second.read_many(two.properties) == {"temp": -4.0}
        await second.write(two.properties[0], 19.5)
    assert await modbus_rtu.sim.get(H, 0, slave=2) == [195]
    assert await modbus_rtu.sim.get(H, 0, slave=1) == [215]


async def test_rtu_slave_that_does_not_answer_is_unreachable(modbus_rtu: RtuModbus) -> None:
    dev = plc(modbus_rtu.config(slave=1, timeout=200), {"temp": VISITORS["temp"]})
    async with ModbusMapper(dev, Buses()) as mapper:
        await modbus_rtu.sim.stop()
        with pytest.raises(DeviceUnreachable):
            await mapper.read(dev.properties[0])


def test_nan_is_read_from_a_float_register() -> None:
    from mappers.modbus.decoding import Codec, DataType, decode

    assert math.isnan(float(decode([0x7FC0, 0], Codec(DataType.FLOAT32, 2))))
