"""The ``opcua`` mapper plugin: OPC UA servers through asyncua, polled or subscribed.

On connect it reads the secrets the device's ``configData`` names (``security``), opens one session
(``link``), and resolves every property once: a ``nodeID`` is parsed, a ``browsePath`` translated
by the server, and each node's DataType read so that a desired value is sent as the node's own
type (``convert``). A property whose node cannot be resolved fails alone (the device turns
``unhealthy`` with the node and the status named) and is tried again at every poll.

Modes, per device (``mode``) or per property: ``poll`` reads the properties due together in one
Read request every ``collectCycle``; ``subscribe`` creates one subscription per connection whose
monitored items push data changes (``watch``), sampled every ``samplingInterval`` (default: the
property's ``collectCycle``). Either way the connection is watched between requests: asyncua's
supervisor probes a silent server every ``watchdogInterval``, and a lost connection ends ``watch``
with ``DeviceUnreachable``, so the device shows ``offline`` within about two intervals even when
nothing is due, and the runner reconnects with back-off (re-creating the subscription).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from asyncua import ua

from mappers.opcua.config import Mode, OpcuaConfig, OpcuaVisitor
from mappers.opcua.convert import from_opcua, to_variant
from mappers.opcua.link import Change, OpcuaLink, Target, item_error
from mappers.opcua.security import load_credentials
from mappers.plugin import MappedProperty, Mapper, ReadResult
from twin.errors import DeviceRefused, DeviceUnreachable, PermanentError
from twin.values import Value, format_value

__all__ = ["OpcuaMapper"]

log = logging.getLogger(__name__)

Prop = MappedProperty[OpcuaVisitor]

#: Floor of the default publishing interval (ms): a server's publish timer is not free.
MIN_PUBLISHING_INTERVAL = 50.0


class OpcuaMapper(Mapper[OpcuaConfig, OpcuaVisitor]):
    protocol = "opcua"
    protocol_config = OpcuaConfig
    visitor_config = OpcuaVisitor

    _link: OpcuaLink | None = None

    async def connect(self) -> None:
        self._targets: dict[str, Target] = {}
        self._unresolved: dict[str, PermanentError] = {}
        credentials = await load_credentials(self.device.config)
        link = OpcuaLink(self.device.config)
        await link.connect(credentials)
        self._link = link
        await self._resolve(self.device.properties)

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _connected(self) -> OpcuaLink:
        if self._link is None:
            raise DeviceUnreachable(f"{self.device.id}: not connected")
        return self._link

    def mode(self, prop: Prop) -> Mode:
        return prop.config.mode or self.device.config.mode

    def pushes(self, prop: Prop) -> bool:
        return self.mode(prop) == "subscribe"

    # -- nodes ---------------------------------------------------------------------------------

    async def _resolve(self, props: Sequence[Prop]) -> None:
        """Find each property's node and its type; failures are kept per property, not raised."""
        link = self._connected()
        ids = await link.node_ids([(p.config.address, p.config.browsePath is not None) for p in props])
        found: list[tuple[Prop, ua.NodeId]] = []
        for prop, node_id in zip(props, ids, strict=True):
            if isinstance(node_id, PermanentError):
                self._fail(prop, node_id)
            else:
                found.append((prop, node_id))
        if not found:
            return
        described = await link.describe([node_id for _, node_id in found])
        for (prop, node_id), description in zip(found, described, strict=True):
            if isinstance(description, PermanentError):
                self._fail(prop, description)
                continue
            vtype, is_array = description
            address = prop.config.address
            where = f"{prop.name} ({address})"
            self._targets[prop.name] = Target(node_id, vtype, is_array, where)
            self._unresolved.pop(prop.name, None)

    def _fail(self, prop: Prop, error: PermanentError) -> None:
        message = str(error)
        text = message if prop.config.address in message else f"{prop.config.address}: {message}"
        self._unresolved[prop.name] = type(error)(text)

    def _value(self, prop: Prop, target: Target, data: ua.DataValue) -> ReadResult:
        status = data.StatusCode
        if status is not None and status.is_bad():
            return item_error(status, target.where)
        variant = data.Value
        try:
            return from_opcua(
                None if variant is None else variant.Value, target.variant_type, prop.type, where=target.where
            )
        except PermanentError as exc:
            return exc

    # -- reads and writes ------------------------------------------------------------------------

    async def read_many(self, props: Sequence[Prop]) -> dict[str, ReadResult]:
        missing = [p for p in props if p.name not in self._targets]
        if missing:
            await self._resolve(missing)
        results: dict[str, ReadResult] = {}
        ready: list[tuple[Prop, Target]] = []
        for prop in props:
            target = self._targets.get(prop.name)
            if target is None:
                results[prop.name] = self._unresolved[prop.name]
            else:
                ready.append((prop, target))
        if ready:
            values = await self._connected().read([t.node_id for _, t in ready])
            for (prop, target), data in zip(ready, values, strict=True):
                results[prop.name] = self._value(prop, target, data)
        return results

    async def read(self, prop: Prop) -> Value:
        result = (await self.read_many([prop]))[prop.name]
        if isinstance(result, PermanentError):
            raise result
        return result

    async def write(self, prop: Prop, value: Value) -> None:
        if prop.name not in self._targets:
            await self._resolve([prop])
        target = self._targets.get(prop.name)
        if target is None:
            raise self._unresolved[prop.name]
        if target.is_array:
            raise DeviceRefused(f"{target.where} holds an array: edgetwin writes single values only")
        variant = to_variant(value, target.variant_type, where=target.where)
        status = await self._connected().write(target.node_id, variant)
        if not status.is_good():
            raise item_error(status, f"{target.where} refused {format_value(value, prop.type)}")

    # -- subscriptions ---------------------------------------------------------------------------

    async def watch(self, props: Sequence[Prop]) -> AsyncIterator[tuple[str, ReadResult]]:
        link = self._connected()
        if not props:
            # Polled only: nothing is pushed, but a dead server must not wait for the next poll.
            await link.wait_lost()
            raise DeviceUnreachable(f"{self.device.id}: {link.lost_reason}")
        items: list[tuple[int, ua.NodeId, float]] = []
        by_handle: dict[int, tuple[Prop, Target]] = {}
        for handle, prop in enumerate(props, start=1):
            target = self._targets.get(prop.name)
            if target is None:
                continue  # its read at connect already failed; the device shows why
            sampling = prop.config.samplingInterval
            if sampling is None:
                sampling = prop.collect_cycle * 1000
            items.append((handle, target.node_id, sampling))
            by_handle[handle] = (prop, target)
        if not items:
            await link.wait_lost()
            raise DeviceUnreachable(f"{self.device.id}: {link.lost_reason}")
        interval = self.device.config.publishingInterval or max(
            MIN_PUBLISHING_INTERVAL, min(sampling for _, _, sampling in items)
        )
        log.debug(
            "%s: subscribing to %d node(s), publishing every %g ms", self.device.id, len(items), interval
        )
        async for change in link.changes(items, interval):
            if isinstance(change, Change):
                prop, target = by_handle[change.handle]
                yield prop.name, self._value(prop, target, change.value)
            else:
                handle, error = change
                prop, _ = by_handle[handle]
                yield prop.name, error
