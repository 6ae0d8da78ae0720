"""The BLE mapper plugin: GATT characteristics read, written and notified through bleak.

A Device for it (see ``crds/samples/ble.yaml`` and docs/mappers.md)::

    spec:
      protocol: {protocolName: ble, configData: {macAddress: "A4:C1:38:00:00:01"}}
      properties:
        - name: temperature
          visitors:
            protocolName: ble
            configData:
              characteristicUUID: ebe0ccc1-7a0a-4b0c-8a1a-6ff2997da3a6
              dataConverter: {startIndex: 0, endIndex: 1, byteOrder: little, signed: true, scale: 0.01}

A property whose characteristic can notify (or indicate) is pushed (``watch``) unless its visitor
says ``notify: false``; the others are polled. Several properties may share one characteristic
(different bytes of it): it is read once per poll, subscribed to once. A characteristic that cannot
be read is reported from its notifications, or, if it is write-only, as the value last written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic

from mappers.ble.backend import backend_for
from mappers.ble.config import BleConfig, BleVisitor
from mappers.ble.decoding import decode, encode, splice
from mappers.ble.errors import CharacteristicNotFound, ConnectionLost, LayoutMismatch, NotWritable
from mappers.ble.link import DeviceLink, find_characteristic
from mappers.ble.slots import AdapterSlots
from mappers.bus import Bus
from mappers.plugin import MappedProperty, Mapper, ReadResult
from twin.errors import DeviceRefused, OutOfRange, PermanentError
from twin.values import Value, format_value

__all__ = ["BleMapper"]

log = logging.getLogger(__name__)

Prop = MappedProperty[BleVisitor]
_Key = tuple[str, str | None]  # characteristic UUID, service UUID
_NOTIFIES = frozenset({"notify", "indicate"})
_WRITES = frozenset({"write", "write-without-response"})
#: What a watch hears: the link's "lost" / "wanted" / "released", or a notification's bytes.
_Event = str | tuple[_Key, bytes]


def _key(prop: Prop) -> _Key:
    return prop.config.characteristicUUID, prop.config.serviceUUID


class BleMapper(Mapper[BleConfig, BleVisitor]):
    protocol = "ble"
    protocol_config = BleConfig
    visitor_config = BleVisitor

    _bus: Bus[AdapterSlots] | None = None
    _link: DeviceLink | None = None

    async def connect(self) -> None:
        config = self.device.config
        backend = backend_for(config.adapter_name)
        limit = config.slot_limit
        bus = self.buses.attach(
            f"ble:adapter:{backend.adapter or 'default'}", lambda: AdapterSlots(backend.adapter, limit)
        )
        self._bus = bus
        bus.resource.lower_limit(limit)
        self._link = DeviceLink(self.device.id, config, backend, bus.resource)
        self._caps: dict[str, frozenset[str]] = {}  # property -> its characteristic's properties
        self._pushed: set[str] = set()
        self._written: dict[str, Value] = {}  # the last value written to a write-only characteristic
        async with self._link.use() as client:
            self._inspect(client)

    def _inspect(self, client: BleakClient) -> None:
        """Learn each property's characteristic: what it can do decides polled or pushed."""
        for prop in self.device.properties:
            char = find_characteristic(client, *_key(prop))
            if char is None:
                continue  # reading it reports CharacteristicNotFound, and the others go on
            caps = frozenset(char.properties)
            self._caps[prop.name] = caps
            notify = prop.config.notify
            if notify is not False and caps & _NOTIFIES:
                self._pushed.add(prop.name)
            elif notify:
                log.warning(
                    "%s: %s: characteristic %s cannot notify (it offers %s); polling it",
                    self.device.id,
                    prop.name,
                    prop.config.characteristicUUID,
                    ", ".join(sorted(caps)),
                )

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        bus, self._bus = self._bus, None
        if bus is not None:
            self.buses.detach(bus)  # the slots need no closing

    def _require_link(self) -> DeviceLink:
        if self._link is None:
            raise ConnectionLost(f"{self.device.id}: not connected")
        return self._link

    def pushes(self, prop: Prop) -> bool:
        return prop.name in self._pushed

    def _missing(self, prop: Prop) -> CharacteristicNotFound:
        service = f" in service {prop.config.serviceUUID}" if prop.config.serviceUUID else ""
        return CharacteristicNotFound(
            f"{self.device.config.target} has no characteristic {prop.config.characteristicUUID}{service}"
        )

    async def _read_raw(self, link: DeviceLink, client: BleakClient, key: _Key) -> bytes:
        char = link.characteristic(*key)
        return bytes(await link.call(f"reading {key[0]}", client.read_gatt_char(char)))

    def _decode(self, prop: Prop, data: bytes) -> ReadResult:
        try:
            return decode(data, prop.config.layout, prop.type)
        except PermanentError as exc:
            return exc

    async def read_many(self, props: Sequence[Prop]) -> dict[str, ReadResult]:
        link = self._require_link()
        results: dict[str, ReadResult] = {}
        async with link.use() as client:
            raw: dict[_Key, bytes | PermanentError] = {}  # one read per characteristic
            for prop in props:
                caps = self._caps.get(prop.name)
                if caps is None:
                    results[prop.name] = self._missing(prop)
                    continue
                if "read" not in caps:
                    # Reported from notifications; a write-only one as what was last written.
                    if prop.name in self._written:
                        results[prop.name] = self._written[prop.name]
                    continue
                key = _key(prop)
                data = raw.get(key)
                if data is None:
                    try:
                        data = await self._read_raw(link, client, key)
                    except PermanentError as exc:
                        data = exc
                    raw[key] = data
                results[prop.name] = data if isinstance(data, PermanentError) else self._decode(prop, data)
        return results

    async def read(self, prop: Prop) -> Value:
        result = (await self.read_many([prop])).get(prop.name)
        if result is None:
            raise DeviceRefused(f"characteristic {prop.config.characteristicUUID} cannot be read")
        if isinstance(result, PermanentError):
            raise result
        return result

    async def write(self, prop: Prop, value: Value) -> None:
        link = self._require_link()
        visitor = prop.config
        uuid = visitor.characteristicUUID
        async with link.use() as client:
            char = self._characteristic(link, prop)
            caps = frozenset(char.properties)
            response = visitor.writeWithResponse
            if response is None:
                response = "write" in caps
            if ("write" if response else "write-without-response") not in caps:
                offers = ", ".join(sorted(caps)) or "nothing"
                how = "with" if response else "without"
                what = "has no write property" if not caps & _WRITES else f"cannot be written {how} response"
                raise NotWritable(
                    f"characteristic {uuid} of {self.device.config.target} {what} (it offers: {offers})"
                )
            data = await self._bytes_for(link, client, char, prop, value)
            await link.call(f"writing {uuid}", client.write_gatt_char(char, data, response=response))
        if "read" not in caps:
            self._written[prop.name] = value

    def _characteristic(self, link: DeviceLink, prop: Prop) -> BleakGATTCharacteristic:
        try:
            return link.characteristic(*_key(prop))
        except CharacteristicNotFound:
            raise self._missing(prop) from None

    async def _bytes_for(
        self, link: DeviceLink, client: BleakClient, char: BleakGATTCharacteristic, prop: Prop, value: Value
    ) -> bytes:
        visitor = prop.config
        text = format_value(value, prop.type)
        mapped = visitor.mapped_bytes(text)
        if mapped is not None:
            return mapped
        if visitor.dataWrite:
            raise OutOfRange(
                f"{text!r} is none of the values dataWrite lists ({', '.join(visitor.dataWrite)})"
            )
        layout = visitor.layout
        field = encode(value, layout, prop.type)
        if not layout.ranged:
            return field
        if "read" not in char.properties:
            if layout.start == 0:
                return field
            raise LayoutMismatch(
                f"cannot write {layout.describe()} alone: characteristic {visitor.characteristicUUID} "
                "cannot be read to keep its other bytes"
            )
        # One value of a multi-value characteristic: keep the bytes around it.
        current = bytes(await link.call(f"reading {visitor.characteristicUUID}", client.read_gatt_char(char)))
        return splice(current, field, layout)

    async def watch(self, props: Sequence[Prop]) -> AsyncIterator[tuple[str, ReadResult]]:
        if not props:
            return  # nothing notifies: the device holds a connection slot only for its polls
        link = self._require_link()
        groups: dict[_Key, list[Prop]] = {}
        for prop in props:
            groups.setdefault(_key(prop), []).append(prop)
        events: asyncio.Queue[_Event] = asyncio.Queue()
        unlisten = link.listen(events.put_nowait)
        subscribed = -1  # the connection the subscriptions were made on
        try:
            while True:
                async with link.use() as client:
                    if link.connections != subscribed:
                        # The runner read every property at connect; after a turn given to other
                        # devices, catch up on what changed while this one was disconnected.
                        catch_up, subscribed = subscribed != -1, link.connections
                        await self._subscribe(link, client, groups, events)
                        if catch_up:
                            async for item in self._catch_up(link, client, groups):
                                yield item
                    async for item in self._turn(link, groups, events):
                        yield item
                # Turn over: the slot goes to a waiting device once this device's exchanges end.
                while link.client is not None and link.slots.wanted:
                    for item in await self._next(events, groups, link.turn):
                        yield item
        finally:
            unlisten()

    async def _turn(
        self, link: DeviceLink, groups: dict[_Key, list[Prop]], events: asyncio.Queue[_Event]
    ) -> AsyncIterator[tuple[str, ReadResult]]:
        """Notifications until the link drops (``ConnectionLost``) or devices wait past our turn."""
        loop = asyncio.get_running_loop()
        while True:
            timeout = None
            if link.slots.wanted:
                timeout = link.held_since + link.turn - loop.time()
                if timeout <= 0:
                    return
            for item in await self._next(events, groups, timeout):
                yield item

    async def _next(
        self, events: asyncio.Queue[_Event], groups: dict[_Key, list[Prop]], timeout: float | None
    ) -> list[tuple[str, ReadResult]]:
        try:
            async with asyncio.timeout(timeout):
                event = await events.get()
        except TimeoutError:
            return []
        if event == "lost":
            raise ConnectionLost(f"{self.device.config.target} disconnected (out of range or switched off)")
        if isinstance(event, str):
            return []  # "wanted" or "released": the caller looks at the slots again
        key, data = event
        return [(prop.name, self._decode(prop, data)) for prop in groups.get(key, ())]

    async def _subscribe(
        self,
        link: DeviceLink,
        client: BleakClient,
        groups: dict[_Key, list[Prop]],
        events: asyncio.Queue[_Event],
    ) -> None:
        for key in groups:
            char = link.characteristic(*key)

            def deliver(_: BleakGATTCharacteristic, data: bytearray, key: _Key = key) -> None:
                events.put_nowait((key, bytes(data)))

            await link.call(f"enabling notifications of {key[0]}", client.start_notify(char, deliver))

    async def _catch_up(
        self, link: DeviceLink, client: BleakClient, groups: dict[_Key, list[Prop]]
    ) -> AsyncIterator[tuple[str, ReadResult]]:
        for key, group in groups.items():
            if "read" not in self._caps.get(group[0].name, frozenset()):
                continue
            try:
                data = await self._read_raw(link, client, key)
            except PermanentError as exc:
                for prop in group:
                    yield prop.name, exc
                continue
            for prop in group:
                yield prop.name, self._decode(prop, data)
