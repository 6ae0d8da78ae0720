"""Desired values set at the edge (``up/desired``) into the cluster, by the version rule.

An app on a node's local broker sets a desired value; the node bumps its ``edge`` counter and
sends the value with its pair. For each property, ``versions.judge_edge`` decides: when the pair's
``cloud`` counter is the annotation's (nobody changed the value in the cluster since) and its
``edge`` counter is newer, the value becomes ``spec.properties[].desired.value`` and the pair goes
into the annotation, in ONE write (the whole Device, with the resourceVersion it was read at; a
409 reads it again and judges again). Otherwise the cluster wins: its value, already on its way
down, replaces the edge's at the node. A value the DeviceModel refuses (type, range, ReadOnly) or
a property the Device lacks is refused, logged and recorded as an Event; a device that is not the
node's is refused and logged.

The message is acknowledged once each of its devices is written or refused for good; while the
API does not answer (429, 5xx) nothing is acknowledged and the write is tried again with back-off.
One device's writes are made one at a time, in arrival order.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict

from cloud_sync.checks import check_device
from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.inventory import Inventory
from cloud_sync.kube import KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.mirror import Sender
from cloud_sync.recorder import Recorder
from cloud_sync.resources import DEVICES
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.versions import ANNOTATION, EdgeVerdict, Stamp, format_stamps, judge_edge, read_stamps
from twin.engine import DeviceSchema
from twin.errors import InvalidValue, UnknownProperty
from twin.link import Ack, DesiredValue, EdgeDesired

__all__ = ["EdgeDesiredWriter"]

log = logging.getLogger(__name__)


class EdgeDesiredWriter:
    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        send: Sender,
        recorder: Recorder,
        metrics: Metrics,
        *,
        delays: tuple[float, ...] = DELAYS,
    ) -> None:
        self.api = api
        self.inventory = inventory
        self.send = send
        self.recorder = recorder
        self.metrics = metrics
        self.delays = delays
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._group: asyncio.TaskGroup | None = None
        self._waiting: list[tuple[str, EdgeDesired]] = []

    def offer(self, node: str, message: EdgeDesired) -> None:
        if self._group is None:
            self._waiting.append((node, message))
            return
        self._group.create_task(self._handle(node, message), name=f"edge desired {node} {message.seq}")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            waiting, self._waiting = self._waiting, []
            for node, message in waiting:
                self.offer(node, message)
            try:
                await asyncio.Event().wait()
            finally:
                self._group = None

    async def _handle(self, node: str, message: EdgeDesired) -> None:
        try:
            for device_id, values in message.devices.items():
                async with self._locks[device_id]:
                    await self._apply(node, device_id, values)
        except Exception:
            log.exception("edge desired values %d from %s failed; not acknowledged", message.seq, node)
            return
        self.send(node, "ack", Ack(kind="desired", seq=message.seq))

    async def _apply(self, node: str, device_id: str, values: dict[str, DesiredValue]) -> None:
        namespace, _, name = device_id.partition("/")
        backoff = Backoff(self.delays)
        obj: Obj | None = None
        while True:
            try:
                obj = await self.api.get(DEVICES.path(namespace, name))
                update = self._judge(node, device_id, obj, values)
                if update is None:
                    return
                await self.api.call("PUT", DEVICES.path(namespace, name), body=update)
                self.metrics.api_writes.labels("devices").inc()
                return
            except ApiConflict:
                continue  # changed since it was read: judge again
            except ApiNotFound:
                log.info("edge desired values for %s from %s: the device is gone; dropped", device_id, node)
                return
            except ApiUnavailable as exc:
                self.metrics.api_errors.labels("devices", str(exc.status)).inc()
                delay = backoff.next()
                log.warning(
                    "edge desired values not written: device=%s error=%s retry_in=%.1fs",
                    device_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
            except ApiError as exc:
                self.metrics.api_errors.labels("devices", str(exc.status)).inc()
                log.error("the API refuses edge desired values for %s: %s", device_id, exc)  # noqa: TRY400
                if obj is not None:
                    self.recorder.record(obj, "EdgeDesiredRefused", f"the API refused them: {exc}")
                return

    def _judge(self, node: str, device_id: str, obj: Obj, values: dict[str, DesiredValue]) -> Obj | None:
        """The Device with the accepted values and their pairs, or ``None`` if none is accepted."""
        owner = (obj.get("spec") or {}).get("nodeName")
        if owner != node:
            log.warning("node %s sent desired values for %s, which is %s's; refused", node, device_id, owner)
            return None
        device, checked, _ = check_device(obj, self.inventory.models)
        try:
            if device is None or checked is None or checked.model is None:
                raise UnknownProperty("its Device or DeviceModel cannot be used")
            schema = DeviceSchema.build(device, checked.model)
        except (UnknownProperty, InvalidValue) as exc:
            self._refuse(obj, device_id, node, f"desired values from node {node} refused: {exc}")
            return None
        accepted: dict[str, DesiredValue] = {}
        for prop, incoming in values.items():
            prop_schema = schema.properties.get(prop)
            try:
                if prop_schema is None:
                    raise UnknownProperty(f"the Device has no property {prop!r}")
                prop_schema.check_desired(incoming.value)
            except (UnknownProperty, InvalidValue) as exc:
                self._refuse(
                    obj, device_id, node, f"desired value of {prop!r} from node {node} refused: {exc}"
                )
                continue
            verdict = judge_edge(obj, prop, incoming)
            if verdict is EdgeVerdict.ACCEPT:
                accepted[prop] = incoming
            elif verdict is not EdgeVerdict.ALREADY:
                log.info(
                    "edge desired value %s, the cluster's stands: device=%s node=%s %s=%s@%d/%d",
                    verdict.value,
                    device_id,
                    node,
                    prop,
                    incoming.value,
                    incoming.cloud,
                    incoming.edge,
                )
        if not accepted:
            return None
        update = copy.deepcopy(obj)
        update.pop("status", None)
        for prop in update["spec"]["properties"]:
            if prop.get("name") in accepted:
                desired = prop.get("desired") if isinstance(prop.get("desired"), dict) else {}
                prop["desired"] = {**desired, "value": accepted[prop["name"]].value}
        stamps = read_stamps(obj) | {n: Stamp(d.value, d.cloud, d.edge) for n, d in accepted.items()}
        update["metadata"].setdefault("annotations", {})[ANNOTATION] = format_stamps(stamps)
        log.info(
            "edge desired values accepted: device=%s node=%s %s",
            device_id,
            node,
            " ".join(f"{n}={d.value}@{d.cloud}/{d.edge}" for n, d in sorted(accepted.items())),
        )
        return update

    def _refuse(self, obj: Obj, device_id: str, node: str, message: str) -> None:
        log.warning("%s: %s", device_id, message)
        self.recorder.record(obj, "EdgeDesiredRefused", message)
