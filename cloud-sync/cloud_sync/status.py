"""Reported values, device state and conditions into Device status, at most once per report cycle.

``offer`` takes an ``up/report`` and merges each device's part into what waits for that device's
next status write (``reports.Pending``). A device is written at most once per its report cycle (the
smallest ``reportCycle`` of its properties that report to the cloud, or ``default_cycle``) however
many reports arrive in between: they are merged, the newest value of each property winning. News
is written at once: a new device state, or a property's first value (someone who has just applied
a Device waits for that, not for its report cycle); each property is new once. Each
write goes through the status subresource as a merge patch carrying the resourceVersion it was
computed from, so it never overwrites what another replica wrote meanwhile:

* 409: read the Device again and merge again, at once;
* 429, 5xx, no answer: back off and try again with whatever has arrived meanwhile; nothing is
  acknowledged and nothing is dropped while the API is away;
* 404 (the Device is gone): the report's part is dropped, logged, and acknowledged;
* another 4xx (the API refuses the status for good): logged, recorded as an Event, acknowledged.

A write takes one of ``write_slots`` before it takes what waits and computes the status, and holds
it through the write (a 409's read and merge included), never while it waits for the report cycle
or backs off. So a device waiting for the API holds nothing computed and carries every report that
arrived meanwhile in its one write: under more load than the API takes, fewer and fresher writes,
not thousands of computed statuses and request bodies in memory. The slots are two fewer than the
API's connections: the other requests (reads, creates, Events, nodes' and pods' status) always find
a connection free of status writes, whatever the fleet's backlog.

A report is acknowledged (``down/ack``) once every device in it is written or dropped; the node
keeps and resends until then (docs/cloud-link.md). A device reported by a node that is not its
``spec.nodeName`` is not written (logged once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.inventory import Inventory
from cloud_sync.kube import MERGE_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.recorder import Recorder
from cloud_sync.reports import Pending, Ticket, crd_state, merge_status
from cloud_sync.resources import DEVICES
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.writers import KeyedWriters
from twin.link import Ack, DeviceReport, Report

__all__ = ["AckSender", "StatusWriter"]

log = logging.getLogger(__name__)

#: Sends ``Ack`` to a node.
AckSender = Callable[[str, Ack], None]

#: KubeEdge's report cycle when a Device sets none (its mapper framework's default), in seconds.
DEFAULT_CYCLE = 1.0
_MAX_CONFLICTS = 5  # 409s in a row before backing off like any other failure
#: The API's connections kept from status writes, for every other request cloud-sync makes.
RESERVED_CONNECTIONS = 2


class StatusWriter(KeyedWriters):
    what = "status"

    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        send_ack: AckSender,
        metrics: Metrics,
        recorder: Recorder,
        *,
        default_cycle: float = DEFAULT_CYCLE,
        delays: tuple[float, ...] = DELAYS,
        write_slots: int | None = None,
    ) -> None:
        super().__init__()
        self.api = api
        self.inventory = inventory
        self.send_ack = send_ack
        self.metrics = metrics
        self.recorder = recorder
        self.default_cycle = default_cycle
        self.delays = delays
        #: Status writes at once (taken before a write is computed, held through it).
        self.write_slots = write_slots or max(1, api.connections - RESERVED_CONNECTIONS)
        self._slots = asyncio.Semaphore(self.write_slots)
        self._pending: dict[str, Pending] = {}
        self._tickets: dict[tuple[str, int], Ticket] = {}
        self._last_write: dict[str, float] = {}
        #: Per device, the resourceVersion our last write was made from, and the object it answered.
        self._written: dict[str, tuple[str, Obj]] = {}
        self._warned: set[tuple[str, str]] = set()
        #: Per device, the properties with a value in its status (or on their way) and its state.
        self._known: dict[str, tuple[set[str], str | None]] = {}
        #: Per device, set when news arrives while its writer waits for the report cycle.
        self._news: dict[str, asyncio.Event] = {}

    # -- input ---------------------------------------------------------------------------------------

    def offer(self, node: str, report: Report) -> None:
        ticket = self._tickets.get((node, report.seq))
        if ticket is None:
            ticket = Ticket(node, "report", report.seq, set())
            self._tickets[(node, report.seq)] = ticket
        for device_id, part in report.devices.items():
            owner = self._owner(device_id)
            if owner is not None and owner != node:
                self._warn_once(
                    node, device_id, f"node {node} reported device {device_id}, which is {owner}'s"
                )
                continue
            ticket.remaining.add(device_id)
            self._pending.setdefault(device_id, Pending()).add(node, part, ticket)
            if self._is_news(device_id, part):
                self._news.setdefault(device_id, asyncio.Event()).set()
            self._schedule(device_id)
        if not ticket.remaining:
            self._done(ticket)

    def _is_news(self, device_id: str, part: DeviceReport) -> bool:
        known = self._known.get(device_id)
        if known is None:
            status = (self.inventory.devices.get(device_id) or {}).get("status") or {}
            twins = [t for t in status.get("twins") or [] if isinstance(t, dict) and t.get("reported")]
            known = self._known[device_id] = (
                {str(t.get("propertyName")) for t in twins},
                status.get("state"),
            )
        names, state = known
        return (part.state is not None and crd_state(part.state) != state) or not names.issuperset(part.twins)

    def _take_news(self, device_id: str, snapshot: Pending) -> None:
        """What ``snapshot`` carries is no news any more."""
        self._news.pop(device_id, None)
        names, state = self._known.get(device_id, (set(), None))
        names.update(snapshot.twins)
        self._known[device_id] = (names, crd_state(snapshot.state[0]) if snapshot.state else state)

    def mark_unknown(self, device_id: str) -> None:
        """The device's node is gone: its state is ``unknown`` (if the status has a state at all)."""
        obj = self.inventory.devices.get(device_id)
        state = ((obj or {}).get("status") or {}).get("state")
        if state is None or state == "unknown":
            return
        self._pending.setdefault(device_id, Pending()).set_state("unknown")
        self._schedule(device_id)

    def set_condition(self, device_id: str, condition: dict[str, Any]) -> None:
        pending = self._pending.setdefault(device_id, Pending())
        pending.conditions[str(condition["type"])] = condition
        self._schedule(device_id)

    def _owner(self, device_id: str) -> str | None:
        placement = self.inventory.placements.get(device_id)
        return placement.node if placement is not None else None

    # -- scheduling --------------------------------------------------------------------------------------

    async def _flush(self, device_id: str) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.delays)
        conflicts = 0
        fresh = False  # read the Device from the API rather than the watch's copy
        try:
            while (pending := self._pending.get(device_id)) is not None and not pending.empty:
                cycle = self.inventory.report_cycle(device_id) or self.default_cycle
                wait = self._last_write.get(device_id, -cycle) + cycle - loop.time()
                news = self._news.setdefault(device_id, asyncio.Event())
                if wait > 0 and not news.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await news.wait()
                    continue
                async with self._slots:
                    outcome = await self._write_held(device_id, pending, fresh=fresh, conflicts=conflicts)
                if isinstance(outcome, ApiError):
                    fresh = True
                    if isinstance(outcome, ApiConflict):
                        conflicts = _MAX_CONFLICTS
                        await asyncio.sleep(backoff.next())
                        continue
                    delay = backoff.next()
                    log.warning(
                        "status not written: device=%s error=%s retry_in=%.1fs", device_id, outcome, delay
                    )
                    await asyncio.sleep(delay)
                    continue
                written, snapshot, started = outcome
                conflicts = 0
                fresh = False
                backoff.reset()
                if written:
                    self._last_write[device_id] = started
                for ticket in pending.settle(snapshot):
                    ticket.remaining.discard(device_id)
                    if not ticket.remaining:
                        self._done(ticket)
                if pending.empty:
                    del self._pending[device_id]
        except Exception:
            log.exception("writing the status of %s failed; dropped unacknowledged, to come again", device_id)
            self._drop(device_id)
        finally:
            self._tasks.pop(device_id, None)

    def _drop(self, device_id: str) -> None:
        """Forget what waits for ``device_id`` without acknowledging it: the node sends it again."""
        pending = self._pending.pop(device_id, None)
        for ticket in pending.tickets if pending is not None else []:
            ticket.failed = True
            self._tickets.pop((ticket.node, ticket.seq), None)

    def _done(self, ticket: Ticket) -> None:
        if ticket.failed:
            return
        self._tickets.pop((ticket.node, ticket.seq), None)
        self.send_ack(ticket.node, Ack(kind="report", seq=ticket.seq))

    # -- one write ----------------------------------------------------------------------------------------

    async def _write_held(
        self, device_id: str, pending: Pending, *, fresh: bool, conflicts: int
    ) -> tuple[bool, Pending, float] | ApiConflict | ApiUnavailable:
        """With a write slot held: take what waits and write it, reading again and merging again
        after each 409 until ``_MAX_CONFLICTS`` in a row. Whether a write was made, what it carried
        and when it began; or the failure to back off from (without the slot)."""
        loop = asyncio.get_running_loop()
        while True:
            snapshot = pending.snapshot()
            self._take_news(device_id, snapshot)
            started = loop.time()
            try:
                return await self._write(device_id, snapshot, fresh=fresh), snapshot, started
            except ApiConflict as exc:
                conflicts += 1
                fresh = True
                if conflicts >= _MAX_CONFLICTS:
                    return exc
            except ApiUnavailable as exc:
                return exc

    async def _write(self, device_id: str, pending: Pending, *, fresh: bool) -> bool:
        """Write what ``pending`` holds; whether a write was made. Raises what is to be retried."""
        namespace, _, name = device_id.partition("/")
        obj = None if fresh else self._latest(device_id)
        if obj is None:
            obj = await self._read(namespace, name)
            if obj is None:
                log.info("device %s is gone; dropping what %s reported for it", device_id, pending.node)
                return False
        owner = (obj.get("spec") or {}).get("nodeName")
        if pending.node and owner != pending.node:
            self._warn_once(
                pending.node, device_id, f"node {pending.node} reported device {device_id} of {owner}"
            )
            return False
        placement = self.inventory.placements.get(device_id)
        model = placement.assignment.model if placement and placement.assignment else None
        types = {p.name: p.type.wire_name for p in model.spec.properties} if model is not None else {}
        status, left_out = merge_status(obj, pending, types)
        for reason in left_out:
            self._warn_once(pending.node, device_id, f"{device_id}: {reason}; not written")
        if status is None:
            return False
        version = (obj.get("metadata") or {}).get("resourceVersion")
        body = {"metadata": {"resourceVersion": version}, "status": status}
        path = DEVICES.path(namespace, name, "status")
        try:
            answer = await self.api.call("PATCH", path, body=body, content_type=MERGE_PATCH)
        except ApiNotFound:
            log.info("device %s is gone; dropping what %s reported for it", device_id, pending.node)
            return False
        except (ApiConflict, ApiUnavailable) as exc:
            self.metrics.api_errors.labels("devices/status", str(exc.status)).inc()
            raise
        except ApiError as exc:
            self.metrics.api_errors.labels("devices/status", str(exc.status)).inc()
            log.error("the API refuses the status of %s: %s; dropped", device_id, exc)  # noqa: TRY400
            self.recorder.record(obj, "StatusRefused", f"the status cloud-sync wrote was refused: {exc}")
            return False
        self.metrics.api_writes.labels("devices/status").inc()
        self._written[device_id] = (str(version), answer)
        if pending.twins:
            newest = max(value.timestamp for value in pending.twins.values())
            self.metrics.sync_latency.observe(max(0.0, time.time() - newest / 1000))
        return True

    def _latest(self, device_id: str) -> Obj | None:
        """The newest copy of the Device known without asking: the watch's, or the one our last
        write answered with while the watch has not caught up with it."""
        cached = self.inventory.devices.get(device_id)
        written = self._written.get(device_id)
        if cached is None:
            self._written.pop(device_id, None)
            return None
        if written is not None and (cached.get("metadata") or {}).get("resourceVersion") == written[0]:
            return written[1]
        self._written.pop(device_id, None)
        return cached

    async def _read(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.api.get(DEVICES.path(namespace, name))
        except ApiNotFound:
            return None

    def _warn_once(self, node: str, device_id: str, message: str) -> None:
        if (node, message) not in self._warned:
            self._warned.add((node, message))
            log.warning("%s", message)
