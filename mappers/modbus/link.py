"""The one place that talks pymodbus: a client per bus, and its errors translated once.

pymodbus 3.16: ``device_id=`` names the slave, ``count=`` is keyword-only. Its own reconnect loop
is switched off (``reconnect_delay=0``) and it does not retry (``retries=0``): the runner owns
reconnects and backoff, so a dead device is noticed after one timeout, not after three.

Translation: no connection, a timeout or a gateway that cannot reach the slave is
``DeviceUnreachable`` (offline, reconnect); an exception response (illegal address, illegal value,
device failure...) is ``DeviceRefused`` (the device is there but says no).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from pymodbus import ExceptionResponse, FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from mappers.modbus.config import ModbusConfig
from mappers.modbus.decoding import RegisterKind
from twin.errors import DeviceRefused, DeviceUnreachable, ReadOnlyProperty

__all__ = ["ModbusLink"]

# pymodbus logs every timeout and refused connection at ERROR, with a dump of the last frames, on
# every poll of a dead device. Its errors are translated and logged here once per transition, so
# its own logger stays quiet unless someone configured it on purpose.
_pymodbus_log = logging.getLogger("pymodbus.logging")
if _pymodbus_log.level == logging.NOTSET:
    _pymodbus_log.setLevel(logging.CRITICAL)

_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_GATEWAY_UNREACHABLE = {10, 11}


class ModbusLink:
    """A connection to one bus (a TCP endpoint or a serial port), shared by the devices on it."""

    def __init__(self, config: ModbusConfig) -> None:
        self.where = config.bus_key
        timeout = config.timeout / 1000
        self._timeout = timeout
        self._tcp = config.mode == "TCP"
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if config.mode == "RTU":
            self._client = AsyncModbusSerialClient(
                config.serialPort,
                framer=FramerType.RTU,
                baudrate=config.baudRate,
                bytesize=config.dataBits,
                parity=config.parity,
                stopbits=config.stopBits,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
            )
        else:
            self._client = AsyncModbusTcpClient(
                config.ip, port=config.port, timeout=timeout, retries=0, reconnect_delay=0
            )

        client = self._client
        self._readers = {
            RegisterKind.COIL: client.read_coils,
            RegisterKind.DISCRETE_INPUT: client.read_discrete_inputs,
            RegisterKind.INPUT: client.read_input_registers,
            RegisterKind.HOLDING: client.read_holding_registers,
        }

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self) -> None:
        if self._client.connected:
            return
        try:
            async with asyncio.timeout(self._timeout + 1):
                ok = await self._client.connect()
        except (OSError, TimeoutError, ModbusException) as exc:
            raise DeviceUnreachable(f"cannot connect to {self.where}: {exc}") from exc
        if not ok:
            raise DeviceUnreachable(f"cannot connect to {self.where}")

    def close(self) -> None:
        self._client.close()

    async def read(self, kind: RegisterKind, address: int, count: int, slave: int) -> list[int] | list[bool]:
        reader = self._readers[kind]
        pdu = await self._call(lambda: reader(address, count=count, device_id=slave), slave)
        if kind.is_bits:
            return list(pdu.bits[:count])
        return list(pdu.registers)

    async def write(
        self,
        kind: RegisterKind,
        address: int,
        values: Sequence[int] | Sequence[bool],
        slave: int,
        *,
        multiple: bool = False,
    ) -> None:
        """Coils: function 5 (one) or 15; holding registers: 6 (one) or 16 (several, or ``multiple``)."""
        client = self._client
        if kind is RegisterKind.COIL:
            bits = [bool(v) for v in values]
            if len(bits) == 1:
                await self._call(lambda: client.write_coil(address, bits[0], device_id=slave), slave)
            else:
                await self._call(lambda: client.write_coils(address, bits, device_id=slave), slave)
        elif kind is RegisterKind.HOLDING:
            words = [int(v) for v in values]
            if len(words) == 1 and not multiple:
                await self._call(lambda: client.write_register(address, words[0], device_id=slave), slave)
            else:
                await self._call(lambda: client.write_registers(address, words, device_id=slave), slave)
        else:
            raise ReadOnlyProperty(f"{kind.value} is read-only in Modbus")

    def _lost(self, message: str) -> DeviceUnreachable:
        # A TCP connection that timed out may be half dead (the server restarted): drop it so the
        # next exchange reconnects. A serial port stays open: one silent slave is not a dead line.
        if self._tcp:
            self._client.close()
        return DeviceUnreachable(message)

    async def _call(self, request: Callable[[], Awaitable[ModbusPDU]], slave: int) -> ModbusPDU:
        """Await one pymodbus request; its exceptions become ``twin.errors`` classes here, once."""
        what = f"slave {slave} on {self.where}"
        try:
            # pymodbus bounds each request by ``timeout`` itself (and reports ModbusIOException).
            pdu = await request()
        except ConnectionException as exc:
            raise self._lost(f"{what}: not connected ({exc})") from exc
        except ModbusIOException as exc:
            raise self._lost(f"{what}: no response within {self._timeout:g}s") from exc
        except (TimeoutError, OSError) as exc:
            raise self._lost(f"{what}: {type(exc).__name__} {exc}") from exc
        except ModbusException as exc:
            raise self._lost(f"{what}: {exc}") from exc
        if isinstance(pdu, ExceptionResponse) or pdu.isError():
            code = int(getattr(pdu, "exception_code", 0))
            name = _EXCEPTION_NAMES.get(code, "unknown exception")
            message = f"{what} answered exception {code} ({name})"
            if code in _GATEWAY_UNREACHABLE:
                raise DeviceUnreachable(message)
            raise DeviceRefused(message)
        return pdu
