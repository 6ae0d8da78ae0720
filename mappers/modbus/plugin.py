"""The ``modbus`` mapper plugin: Modbus TCP and RTU devices through pymodbus.

Devices on one link (a serial port, or one TCP endpoint such as an RS-485 gateway) share one
pymodbus client and take turns on the link's ``Bus`` with its inter-frame gap. A poll of several
properties is planned into block reads (``planner``) and decoded per property (``decoding``); if a
device refuses a merged block (a hole in its register map), the block's properties are read one by
one from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from mappers.bus import Bus
from mappers.modbus.config import ModbusConfig, ModbusVisitor
from mappers.modbus.decoding import Codec, DataType, codec_for, decode, decode_bits, encode, encode_bits
from mappers.modbus.link import ModbusLink
from mappers.modbus.planner import Block, Span, plan
from mappers.plugin import MappedProperty, Mapper, ReadResult
from twin.errors import DeviceRefused, DeviceUnreachable, PermanentError, ReadOnlyProperty
from twin.values import Value

__all__ = ["ModbusMapper"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Prop = MappedProperty[ModbusVisitor]


class ModbusMapper(Mapper[ModbusConfig, ModbusVisitor]):
    protocol = "modbus"
    protocol_config = ModbusConfig
    visitor_config = ModbusVisitor

    _bus: Bus[ModbusLink] | None = None

    def _make_codecs(self) -> dict[str, Codec]:
        codecs = {}
        for prop in self.device.properties:
            v = prop.config
            codecs[prop.name] = codec_for(
                v.kind,
                prop.type,
                data_type=v.data_type,
                limit=v.limit,
                scale=v.scale,
                offset=v.valueOffset,
                byte_swap=v.isSwap,
                word_swap=v.isRegisterSwap,
                encoding=v.encoding,
            )
        return codecs

    async def connect(self) -> None:
        config = self.device.config
        self._codecs = self._make_codecs()
        # Properties that are one plain 16-bit register: name -> signed?
        self._plain = {
            name: codec.data_type is DataType.INT16
            for name, codec in self._codecs.items()
            if codec.count == 1
            and not codec.byte_swap
            and not codec.scaled
            and codec.data_type in (DataType.INT16, DataType.UINT16)  # never a coil: those are BOOL
        }
        self._solo: set[str] = set()  # properties read alone since a merged read was refused
        # Plans by the properties polled together (the runner asks for the same sets every cycle).
        self._plans: dict[tuple[tuple[str, ...], int], list[Block[str]]] = {}
        self._single: dict[str, Block[str]] = {}
        bus = self.buses.attach(
            config.bus_key, lambda: ModbusLink(config), frame_gap=config.frame_gap_seconds
        )
        self._bus = bus
        async with bus.turn():
            await bus.resource.connect()

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            link = self.buses.detach(bus)
            if link is not None:
                link.close()

    async def _exchange(self, call: Callable[[ModbusLink], Awaitable[T]]) -> T:
        bus = self._bus
        if bus is None:
            raise DeviceUnreachable(f"{self.device.id}: not connected")
        link = bus.resource
        async with bus.turn():
            if not link.connected:
                # Another device on this link lost it; whoever comes first reconnects.
                await link.connect()
            return await call(link)

    def _span(self, prop: Prop) -> Span[str]:
        codec = self._codecs[prop.name]
        return Span(prop.name, prop.config.kind, prop.config.offset, codec.count, prop.name not in self._solo)

    async def read(self, prop: Prop) -> Value:
        block = self._single.get(prop.name)
        if block is None:
            span = self._span(prop)
            block = self._single[prop.name] = Block(span.kind, span.address, span.count, (span,))
        results: dict[str, ReadResult] = {}
        await self._read_block(block, results)
        result = results[prop.name]
        if isinstance(result, PermanentError):
            raise result
        return result

    async def read_many(self, props: Sequence[Prop]) -> dict[str, ReadResult]:
        key = (tuple(p.name for p in props), len(self._solo))
        blocks = self._plans.get(key)
        if blocks is None:
            config = self.device.config
            blocks = plan(
                [self._span(p) for p in props], max_gap=config.maxGap, max_registers=config.maxRegisters
            )
            self._plans[key] = blocks
        results: dict[str, ReadResult] = {}
        for block in blocks:
            await self._read_block(block, results)
        return results

    async def _read_block(self, block: Block[str], results: dict[str, ReadResult]) -> None:
        slave = self.device.config.slaveID
        try:
            values = await self._exchange(
                lambda link: link.read(block.kind, block.address, block.count, slave)
            )
        except DeviceRefused as exc:
            if len(block.spans) == 1:
                results[block.spans[0].key] = exc
                return
            log.info(
                "%s: %s %d..%d refused as one read (%s); reading its properties one by one",
                self.device.id,
                block.kind.value,
                block.address,
                block.address + block.count - 1,
                exc,
            )
            for span in block.spans:
                self._solo.add(span.key)
                await self._read_block(Block(span.kind, span.address, span.count, (span,)), results)
            return
        bits = block.kind.is_bits
        plain = self._plain
        for span in block.spans:
            start = span.address - block.address
            signed = plain.get(span.key)
            if signed is not None:
                # One unscaled 16-bit register: the common case, decoded inline (40 per block read).
                word = int(values[start])
                results[span.key] = word - 0x10000 if signed and word >= 0x8000 else word
                continue
            codec = self._codecs[span.key]
            part = values[start : start + span.count]
            try:
                if bits:
                    results[span.key] = decode_bits([bool(b) for b in part], codec)
                else:
                    results[span.key] = decode(part, codec)
            except PermanentError as exc:
                results[span.key] = exc

    async def write(self, prop: Prop, value: Value) -> None:
        visitor = prop.config
        if not visitor.kind.writable:
            raise ReadOnlyProperty(f"{prop.name} is a {visitor.kind.value}: Modbus cannot write it")
        codec = self._codecs[prop.name]
        words: list[int] | list[bool] = (
            encode_bits(value, codec) if visitor.kind.is_bits else encode(value, codec)
        )
        slave = self.device.config.slaveID
        await self._exchange(
            lambda link: link.write(
                visitor.kind, visitor.offset, words, slave, multiple=visitor.writeMultiple
            )
        )
