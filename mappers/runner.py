"""The mapper runner: learns the node's devices from the twin and runs a worker for each.

It speaks only MQTT (DESIGN §4), so it runs inside the node agent's process, as its own process
(``edgetwin mapper run``) or in a pod, unchanged. It asks ``$hw/events/node/{node}/membership/get``
until the twin answers, follows ``membership/updated``, keeps the devices whose protocol it hosts,
loads each protocol's plugin only when a device needs it, and runs one ``DeviceWorker`` per device
in one ``asyncio.TaskGroup``. Every worker runs inside a guard that logs, backs off and restarts
it, so one dead PLC (or one buggy plugin) never stops the loop. Deltas and twin answers arrive on
wildcard subscriptions and are routed to the worker of their device.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Sequence

from edgemqtt.client import BrokerAddress, Message, MqttClient
from edgemqtt.errors import BrokerUnavailable
from mappers.bus import Buses
from mappers.membership import Member, MembershipChange, membership_request, parse_membership
from mappers.registry import PluginUnavailable, Registry
from mappers.settings import RunnerSettings
from mappers.worker import REPORT_PREFIX, DeviceWorker
from twin.errors import InvalidPayload
from twin.topics import DEVICE_PREFIX, Action, membership_topic
from twin.wire import Reply, TwinDelta, decode

__all__ = ["MapperRunner", "run_mappers"]

log = logging.getLogger(__name__)

_ROUTED = (Action.TWIN_UPDATE_DELTA, Action.TWIN_GET_RESULT, Action.TWIN_UPDATE_RESULT)


class MapperRunner:
    """Hosts the mappers of ``protocols`` (all installed plugins when ``None``) for one node."""

    def __init__(
        self,
        node: str,
        broker: BrokerAddress | str,
        *,
        protocols: Sequence[str] | None = None,
        registry: Registry | None = None,
        settings: RunnerSettings | None = None,
    ) -> None:
        self.node = node
        self.broker = BrokerAddress.parse(broker) if isinstance(broker, str) else broker
        self.registry = registry or Registry()
        self.protocols = frozenset(protocols) if protocols is not None else None
        self.settings = settings or RunnerSettings()
        self.buses = Buses()
        self.workers: dict[str, DeviceWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._mqtt: MqttClient | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._ready = asyncio.Event()
        self._warned: set[str] = set()
        self._ids = itertools.count(1)

    @property
    def ready(self) -> asyncio.Event:
        """Set once the twin answered the first membership request."""
        return self._ready

    def hosts(self, protocol: str) -> bool:
        if self.protocols is not None:
            return protocol in self.protocols
        return protocol in self.registry

    async def run(self) -> None:
        """Run until cancelled."""
        for protocol in sorted(self.protocols or ()):
            if protocol not in self.registry:
                log.error(
                    "no mapper plugin for protocol %r is installed: its devices stay unserved", protocol
                )
        mqtt = MqttClient(
            self.broker,
            client_id=f"edgetwin-mappers-{self.node}-{os.getpid()}-{id(self):x}",
            on_message=self._on_message,
            reconnect_delays=self.settings.broker_delays,
        )
        await self._connect(mqtt)
        self._mqtt = mqtt
        try:
            await mqtt.subscribe(
                membership_topic(self.node, "get/result"),
                membership_topic(self.node, "updated"),
                *(f"{DEVICE_PREFIX}+/+/{action.value}" for action in _ROUTED),
            )
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._membership(), name=f"membership {self.node}")
        finally:
            self._tg = None
            await mqtt.close()
            self._mqtt = None

    async def _connect(self, mqtt: MqttClient) -> None:
        # Until connected: a broker that is away after broker_delays, a refused login (logged once
        # as an error naming the reason) only every mqtt.refused_delay seconds.
        await mqtt.connect(retry=True)

    async def _membership(self) -> None:
        """Ask for the device list until answered, then again every ``membership_refresh``."""
        assert self._mqtt is not None
        topic = membership_topic(self.node, "get")
        while not self._ready.is_set():
            self._mqtt.publish(topic, membership_request(f"mappers-{next(self._ids)}"), qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.membership_retry):
                    await self._ready.wait()
            if not self._ready.is_set():
                log.debug("no membership answer for node %s yet; asking again", self.node)
        while True:
            await asyncio.sleep(self.settings.membership_refresh)
            self._mqtt.publish(topic, membership_request(f"mappers-{next(self._ids)}"), qos=1)

    # -- incoming messages -----------------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        topic = message.topic
        if topic.startswith("$hw/events/node/"):
            self._on_membership(message.payload)
            return
        if not topic.startswith(DEVICE_PREFIX):
            return
        rest = topic[len(DEVICE_PREFIX) :]
        for action in _ROUTED:
            suffix = f"/{action.value}"
            if rest.endswith(suffix):
                worker = self.workers.get(rest[: -len(suffix)])
                if worker is not None:
                    self._route(worker, action, message.payload)
                return

    def _on_membership(self, payload: bytes) -> None:
        try:
            change = parse_membership(payload)
        except InvalidPayload as exc:
            log.warning("ignoring a membership message: %s", exc)
            return
        if change.full and not self._ready.is_set():
            log.info("node %s has %d device(s) for edgetwin", self.node, len(change.added))
        self._apply(change)
        if change.full:
            self._ready.set()

    def _route(self, worker: DeviceWorker, action: Action, payload: bytes) -> None:
        try:
            if action is Action.TWIN_UPDATE_DELTA:
                delta = decode(TwinDelta, payload).delta
                worker.deliver_desired({name: value for name, value in delta.items() if value})
                return
            reply = decode(Reply, payload)
        except InvalidPayload as exc:
            log.debug("%s: unreadable %s body: %s", worker.id, action.value, exc)
            return
        if action is Action.TWIN_UPDATE_RESULT:
            if reply.code is not None and reply.code >= 400 and reply.event_id.startswith(REPORT_PREFIX):
                worker.deliver_update_error(reply.code, reply.reason)
            return
        # A twin/get result: the desired values the device has not reached yet.
        worker.deliver_desired(
            {
                name: prop.desired
                for name, prop in reply.twin.items()
                if prop is not None and prop.desired and prop.desired != prop.reported
            }
        )

    # -- devices -----------------------------------------------------------------------------------

    def _apply(self, change: MembershipChange) -> None:
        wanted = {m.id: m for m in change.added}
        if change.full:
            for device_id in list(self.workers):
                if device_id not in wanted:
                    self._stop(device_id, "no longer on this node")
        for device_id in change.removed:
            if device_id not in wanted:
                self._stop(device_id, "removed")
        for member in change.added:
            self._start(member)

    def _start(self, member: Member) -> None:
        protocol = member.device.protocol_name
        current = self.workers.get(member.id)
        if current is not None and current.member.serves_like(member):
            current.member = member  # the newer definition, for the state report cycle and the log
            return
        if not self.hosts(protocol):
            if current is not None:
                self._stop(member.id, f"now uses protocol {protocol!r}")
            if self.protocols is None and protocol not in self._warned:
                self._warned.add(protocol)
                log.warning(
                    "device %s uses protocol %r, for which no mapper plugin is installed", member.id, protocol
                )
            return
        try:
            plugin = self.registry.load(protocol)
        except PluginUnavailable as exc:
            if protocol not in self._warned:
                self._warned.add(protocol)
                log.error("%s; its devices stay unserved while the others run", exc)  # noqa: TRY400
            return
        previous = self._stop(member.id, "changed") if current is not None else None
        if self._tg is None or self._mqtt is None:
            return
        worker = DeviceWorker(member, plugin, publish=self._publish, buses=self.buses, settings=self.settings)
        self.workers[member.id] = worker
        log.info("serving device %s with the %s mapper", member.id, protocol)
        self._tasks[member.id] = self._tg.create_task(
            self._guard(worker, previous), name=f"device {member.id}"
        )

    def _stop(self, device_id: str, why: str) -> asyncio.Task[None] | None:
        self.workers.pop(device_id, None)
        task = self._tasks.pop(device_id, None)
        if task is not None:
            log.info("stopped serving device %s: %s", device_id, why)
            task.cancel()
        return task

    async def _guard(self, worker: DeviceWorker, previous: asyncio.Task[None] | None = None) -> None:
        """Run a worker forever: an unexpected error is logged, backed off and restarted."""
        if previous is not None:
            # The device's previous worker first lets go of what it holds (a pin, a bus slot).
            await asyncio.wait([previous])
        for attempt in itertools.count():
            try:
                await worker.run()
                return
            except Exception:  # the guard: one device must not stop the others
                log.exception("%s: device worker crashed; restarting", worker.id)
            await asyncio.sleep(self.settings.reconnect_delay(attempt))

    def _publish(self, topic: str, payload: bytes) -> None:
        if self._mqtt is None:
            return
        try:
            self._mqtt.publish(topic, payload, qos=1)
        except BrokerUnavailable as exc:
            log.debug("publish to %s dropped: %s", topic, exc)


async def run_mappers(
    node: str,
    broker: BrokerAddress | str,
    protocols: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
    settings: RunnerSettings | None = None,
) -> None:
    """Host the mapper plugins of ``protocols`` (default: every installed one) for ``node``, forever."""
    await MapperRunner(node, broker, protocols=protocols, registry=registry, settings=settings).run()
