"""Simulated Modbus slaves on a real pymodbus server, over TCP or a serial port.

Tests, benchmarks and the single-machine stack (``make run``) need PLCs that do not exist: this is
a pymodbus server with four separate tables per slave (coils, discrete inputs, input and holding
registers, addressed from 0 like the requests), several slaves on one server (an RS-485 line),
values set and read from outside while it runs, and optional write limits so that a device can
refuse a value with exception 3 (illegal data value) like a real one.

``python -m mappers.modbus.simulator`` serves the sample device of ``crds/samples`` (see
``SAMPLE_LAYOUT``) on 127.0.0.1:5020, slave 1.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from mappers.modbus.decoding import RegisterKind
from mappers.simulation import sample_main, wander

__all__ = ["SAMPLE_LAYOUT", "ModbusSimulator", "Slave", "sample_values", "serve_sample"]

log = logging.getLogger(__name__)

# Function codes that read (get) and write (set) each table through the server's datastore.
_GET = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE_INPUT: 2,
    RegisterKind.HOLDING: 3,
    RegisterKind.INPUT: 4,
}
_SET = {
    RegisterKind.COIL: 15,
    RegisterKind.DISCRETE_INPUT: 2,
    RegisterKind.HOLDING: 16,
    RegisterKind.INPUT: 4,
}


@dataclass
class Slave:
    """One simulated device: table sizes, write limits and holes, and a count of requests served.

    ``write_limits`` maps a holding register to the largest value it accepts (above: exception 3,
    illegal data value). ``holes`` are holding registers that do not exist (exception 2, illegal
    data address, for any request that touches them), as in a sparse PLC register map.
    """

    id: int = 1
    holding: int = 256
    input: int = 256
    coils: int = 64
    discrete: int = 64
    write_limits: Mapping[int, int] = field(default_factory=dict)
    holes: frozenset[int] = frozenset()
    requests: int = 0

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if function_code in (3, 6, 16) and self.holes.intersection(range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        if values is not None and function_code in (6, 16):
            for i, value in enumerate(values):
                limit = self.write_limits.get(address + i)
                if limit is not None and int(value) > limit:
                    return ExcCodes.ILLEGAL_VALUE
        return None

    def sim_device(self) -> SimDevice:
        return SimDevice(
            id=self.id,
            simdata=(
                [SimData(0, count=self.coils, values=False, datatype=DataType.BITS)],
                [SimData(0, count=self.discrete, values=False, datatype=DataType.BITS)],
                [SimData(0, count=self.holding, values=0, datatype=DataType.REGISTERS)],
                [SimData(0, count=self.input, values=0, datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )


#: What a request for a slave id the simulator does not have gets: ``failure`` is pymodbus's own
#: answer (exception 4, slave device failure); ``gateway`` is a TCP gateway's (exception 11, the
#: target did not respond); ``silent`` is an RS-485 line's (no answer: the client times out).
Absent = Literal["failure", "gateway", "silent"]


class _KnownSlavesOnly(SimCore):
    """pymodbus's simulator answers an unknown id from slave 0 or with exception 4; a real bus does not."""

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices:
            raise NoSuchIdException(f"no slave {device_id}")

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


class ModbusSimulator:
    """``async with ModbusSimulator([Slave(1), Slave(2)]).tcp(port=5020) as sim: ...``

    ``absent`` says how requests for other slave ids are answered (see ``Absent``).
    """

    def __init__(self, slaves: Sequence[Slave] = (Slave(),), *, absent: Absent = "failure") -> None:
        self.slaves = list(slaves)
        self.absent = absent
        self._server: ModbusBaseServer | None = None
        self._start: tuple[str, dict[str, object]] | None = None

    def tcp(self, host: str = "127.0.0.1", port: int = 5020) -> Self:
        self._start = ("tcp", {"address": (host, port)})
        return self

    def serial(self, port: str, *, baudrate: int = 19200) -> Self:
        self._start = ("serial", {"port": port, "baudrate": baudrate})
        return self

    async def start(self) -> None:
        if self._start is None:
            raise RuntimeError("call .tcp() or .serial() first")
        kind, options = self._start
        devices = [slave.sim_device() for slave in self.slaves]
        server: ModbusBaseServer
        if kind == "tcp":
            address = options["address"]
            assert isinstance(address, tuple)
            server = ModbusTcpServer(devices, address=address)
        else:
            port, baudrate = options["port"], options["baudrate"]
            assert isinstance(port, str) and isinstance(baudrate, int)
            server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=port, baudrate=baudrate, timeout=1, reconnect_delay=0
            )
        if self.absent != "failure":
            server.context = _KnownSlavesOnly(devices)
            server.ignore_missing_devices = self.absent == "silent"
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # untyped in pymodbus

    @property
    def running(self) -> bool:
        return self._server is not None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _running(self) -> ModbusBaseServer:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return self._server

    async def set(
        self, kind: RegisterKind, address: int, values: Sequence[int] | Sequence[bool], *, slave: int = 1
    ) -> None:
        """Change the device's own values (as its sensors would)."""
        server = self._running()
        data: list[int] | list[bool] = (
            [bool(v) for v in values] if kind.is_bits else [int(v) & 0xFFFF for v in values]
        )
        await server.async_setValues(slave, _SET[kind], address, data)

    async def get(self, kind: RegisterKind, address: int, count: int = 1, *, slave: int = 1) -> list[int]:
        server = self._running()
        values = await server.async_getValues(slave, _GET[kind], address, count)
        return [int(v) for v in values]


# The Modbus TCP sample of crds/samples/modbus-tcp.yaml (a thermostat): slave 1 on 127.0.0.1:5020.
#   property     table            offset  visitor                           register value
#   temperature  HoldingRegister  0       limit 1, scale 0.1, int (FLOAT)   215 -> 21.5, drifting
#   setpoint     HoldingRegister  1       limit 1, int (INT, ReadWrite)     21 (desired "21")
#   heater       CoilRegister     0       boolean (ReadWrite)               off (desired "false")
SAMPLE_LAYOUT: dict[tuple[RegisterKind, int], list[int]] = {
    (RegisterKind.HOLDING, 0): [215],
    (RegisterKind.HOLDING, 1): [21],
    (RegisterKind.COIL, 0): [0],
}


async def sample_values(sim: ModbusSimulator, *, slave: int = 1) -> None:
    for (kind, address), values in SAMPLE_LAYOUT.items():
        await sim.set(kind, address, values, slave=slave)


async def serve_sample(
    host: str = "127.0.0.1", port: int = 5020, *, drift: float = 1.0, ready: asyncio.Event | None = None
) -> None:
    """Serve the sample device until cancelled (``edgetwin up`` hosts this); ``ready`` once it listens."""
    async with ModbusSimulator([Slave(1)]).tcp(host, port) as sim:
        await sample_values(sim)
        log.info("simulated Modbus device on %s:%d (slave 1)", host, port)

        async def step(tick: int) -> None:
            # The temperature wanders around 21.5, so that a demo shows changes.
            await sim.set(RegisterKind.HOLDING, 0, [215 + round(10 * math.sin(tick / 10))])

        await wander(step, drift=drift, ready=ready)


def main(argv: Sequence[str] | None = None) -> None:
    sample_main(argv, "Serve the sample Modbus device of crds/samples.", 5020, serve_sample)


if __name__ == "__main__":
    main()
