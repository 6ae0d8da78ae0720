"""Sending what the node owes the cloud: reports paced per device, edge-set desired values, resends.

The twin tells the uplink which devices changed (``changed``, a twin observer: one set insertion,
so a telemetry flood costs next to nothing here). The uplink's loop then looks at those devices and
sends what each owes beyond the outbox's marks (``node_agent.outbox``), in its latest state:

* a device goes up in an ``up/report`` at most once per its report cycle (``ReportRules``): a
  device that changes a thousand times a second still sends one report a cycle, carrying the
  latest value of each property; news goes at once (a change of device state, a property's first
  value), so a new device shows its first values in the cloud without waiting a cycle;
* desired values set at the edge go up at once in an ``up/desired``, with their version pairs;
* what was sent and not acknowledged goes again after ``resend`` seconds, and everything owed goes
  again after a reconnect (``link_up``): in-flight messages of an older connection are not waited for;
  so does every device's state, owed or not: a node that was away is NotReady in the cluster and its
  devices' states ``unknown``, and a device whose state did not change would never say otherwise;
* a ``down/ack`` moves the outbox's marks by exactly what the acknowledged message carried.

Devices that fall due within ``BATCH_WINDOW`` of each other go in one message: a thousand devices
reporting once a second each make a few dozen messages a second, not a thousand.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal

from node_agent.metrics import NodeMetrics
from node_agent.outbox import Marks, Outbox, Owed, ReportRules, cloud_state, owed_desired, owed_report
from twin.link import Ack, DesiredValue, DeviceReport, EdgeDesired, Report, ReportedValue, up_topic
from twin.observers import TwinChange
from twin.service import TwinService

__all__ = ["Uplink"]

log = logging.getLogger(__name__)

#: Devices per message: a node with a thousand devices sends them in a few messages of tens of KB.
DEVICES_PER_MESSAGE = 100
#: Messages whose ack is still awaited; older ones are forgotten (what they carried is sent again).
MAX_UNACKED = 10_000
#: Seconds the sender waits, once something is due, for more to fall due and go in the same message.
BATCH_WINDOW = 0.05

Kind = Literal["report", "desired"]


class Uplink:
    def __init__(
        self,
        service: TwinService,
        outbox: Outbox,
        publish: Callable[[str, bytes], bool],
        *,
        resend: float,
        metrics: NodeMetrics,
    ) -> None:
        self.service = service
        self.node = service.node
        self.outbox = outbox
        self.resend = resend
        self.metrics = metrics
        #: Sends one message at QoS 1; False when it could not be sent (the link is down).
        self._publish = publish
        self._up = False
        self._wake = asyncio.Event()
        self._dirty: set[str] = set()
        # Devices whose next report waits for its report cycle: more changes need no look.
        self._slotted: set[str] = set()
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._last_report: dict[str, float] = {}
        self._last_desired: dict[str, float] = {}
        # What went up since the last connect, as marks: acknowledged or not, it is not "fresh".
        self._in_flight: dict[str, Marks] = {}
        self._unacked: OrderedDict[int, tuple[Kind, dict[str, Owed]]] = OrderedDict()
        #: Per device, its rules and the stamp of the Device they were read from (``DeviceTable.stamp``:
        #: the same object until the Device changes).
        self._rules: dict[str, tuple[object, ReportRules]] = {}
        #: Equal rules are kept once: the devices of one model mostly have the same.
        self._distinct_rules: dict[ReportRules, ReportRules] = {}

    # -- what the link tells it ----------------------------------------------------------------------

    def changed(self, device_id: str, change: TwinChange) -> None:
        """The twin observer: called for every change of every twin, so it only takes note."""
        if device_id in self._dirty:
            return
        if device_id in self._slotted and not (change.desired and change.origin == "edge"):
            return
        self._dirty.add(device_id)
        if self._up:
            self._wake.set()

    def link_up(self) -> None:
        """Synced on a new connection: everything owed is sent again, in its latest state, and every
        device's state (the cloud may have made it ``unknown`` while the node was away)."""
        self.outbox.states_unconfirmed()
        self._in_flight.clear()
        self._slotted.clear()
        self._last_desired.clear()
        self._up = True
        self._dirty.update(self.service.devices)
        self._wake.set()

    def link_down(self) -> None:
        self._up = False

    def forget(self, device_id: str) -> None:
        """A device the node no longer holds: it owes nothing any more."""
        self.outbox.forget(device_id)
        for table in (self._last_report, self._last_desired, self._in_flight, self._rules, self._due):
            table.pop(device_id, None)
        self._slotted.discard(device_id)
        self._dirty.discard(device_id)

    def acknowledged(self, ack: Ack) -> None:
        entry = self._unacked.pop(ack.seq, None)
        if entry is None or entry[0] != ack.kind:
            log.debug("ack of %s %d, not awaited (a repeat, or from before a restart)", ack.kind, ack.seq)
            return
        self.metrics.acks.labels(ack.kind).inc()
        for device_id, owed in entry[1].items():
            if device_id in self.service.devices:
                self.outbox.acknowledge(device_id, owed)

    def depth(self) -> tuple[int, int]:
        """Devices that owe something and how many values they owe, as the marks stand."""
        devices = values = 0
        for device_id in self.service.devices:
            twin = self.service.twins.get(device_id)
            rules = self._rules_of(device_id)
            if twin is None or rules is None:
                continue
            marks = self.outbox.marks(device_id)
            owed = owed_report(twin, rules, marks).values + owed_desired(twin, marks).values
            devices += bool(owed)
            values += owed
        return devices, values

    # -- the loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = max(0.0, self._heap[0][0] - loop.time()) if self._up and self._heap else None
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if self._up:
                await asyncio.sleep(BATCH_WINDOW)
                self._send_due(loop.time())

    def _send_due(self, now: float) -> None:
        candidates, self._dirty = self._dirty, set()
        while self._heap and self._heap[0][0] <= now:
            when, device_id = heapq.heappop(self._heap)
            if self._due.get(device_id) == when:
                del self._due[device_id]
                self._slotted.discard(device_id)
                candidates.add(device_id)
        reports: dict[str, Owed] = {}
        desired: dict[str, Owed] = {}
        for device_id in candidates:
            self._look_at(device_id, now, reports, desired)
        if reports:
            self._send("report", reports, now)
        if desired:
            self._send("desired", desired, now)

    def _look_at(
        self, device_id: str, now: float, reports: dict[str, Owed], desired: dict[str, Owed]
    ) -> None:
        twin = self.service.twins.get(device_id)
        rules = self._rules_of(device_id)
        if twin is None or rules is None:
            return
        acked = self.outbox.marks(device_id)
        in_flight = self._in_flight.get(device_id)
        sent = acked if in_flight is None else acked.merged(in_flight)
        owed = owed_report(twin, rules, acked)
        if owed:
            unsent = owed if in_flight is None else owed_report(twin, rules, sent)
            fresh = bool(unsent)
            # News goes at once: a new device state, or a property's first value (a user who has
            # just applied a Device waits for that, not for a report cycle). Changes of values the
            # cloud has are paced.
            news = unsent.state is not None or any(name not in sent.reported for name in unsent.reported)
            wait = 0.0 if news else rules.cycle if fresh else self.resend
            when = self._when(device_id, self._last_report, wait, now)
            if when <= now:
                reports[device_id] = owed
            else:
                self._schedule(device_id, when)
                if fresh:
                    self._slotted.add(device_id)
        owed = owed_desired(twin, acked)
        if owed:
            fresh = in_flight is None or bool(owed_desired(twin, sent))
            when = now if fresh else self._when(device_id, self._last_desired, self.resend, now)
            if when <= now:
                desired[device_id] = owed
            else:
                self._schedule(device_id, when)

    @staticmethod
    def _when(device_id: str, last: dict[str, float], wait: float, now: float) -> float:
        sent_at = last.get(device_id)
        return now if sent_at is None else sent_at + wait

    def _send(self, kind: Kind, owed: dict[str, Owed], now: float) -> None:
        last = self._last_report if kind == "report" else self._last_desired
        items = list(owed.items())
        for start in range(0, len(items), DEVICES_PER_MESSAGE):
            chunk = dict(items[start : start + DEVICES_PER_MESSAGE])
            seq = self.outbox.next_seq()
            body: Report | EdgeDesired
            if kind == "report":
                body = Report(seq=seq, devices={d: _device_report(o) for d, o in chunk.items()})
            else:
                body = EdgeDesired(seq=seq, devices={d: _desired(o) for d, o in chunk.items()})
            sent = self._publish(up_topic(self.node, kind), body.model_dump_json().encode())
            if sent:
                self.metrics.sent.labels(kind).inc()
                self._unacked[seq] = (kind, chunk)
                while len(self._unacked) > MAX_UNACKED:
                    self._unacked.popitem(last=False)
            for device_id, device_owed in chunk.items():
                if sent:
                    last[device_id] = now
                    self._in_flight.setdefault(device_id, Marks()).advance(device_owed)
                # Looked at again when a resend may be due (a change before that looks sooner); not
                # sent, it is looked at again then too, or at the next sync.
                self._schedule(device_id, now + self.resend)

    def _schedule(self, device_id: str, when: float) -> None:
        due = self._due.get(device_id)
        if due is None or when < due:
            self._due[device_id] = when
            heapq.heappush(self._heap, (when, device_id))

    def _rules_of(self, device_id: str) -> ReportRules | None:
        """The device's report rules (``None`` if the node does not hold it), read again only when
        its Device changed."""
        devices = self.service.devices
        if device_id not in devices:
            return None
        stamp = devices.stamp(device_id)
        cached = self._rules.get(device_id)
        if cached is None or cached[0] is not stamp:
            rules = ReportRules.of(devices[device_id])
            cached = self._rules[device_id] = (stamp, self._distinct_rules.setdefault(rules, rules))
        return cached[1]


def _device_report(owed: Owed) -> DeviceReport:
    state, last_online = owed.state if owed.state is not None else (None, "")
    return DeviceReport(
        twins={n: ReportedValue(value=v.value, timestamp=v.timestamp) for n, v in owed.reported.items()},
        observed_desired={
            n: ReportedValue(value=v.value, timestamp=v.timestamp) for n, v in owed.observed.items()
        },
        state=None if state is None else cloud_state(state),
        last_online=last_online or None,
    )


def _desired(owed: Owed) -> dict[str, DesiredValue]:
    return {
        name: DesiredValue(value=value, cloud=cloud, edge=edge)
        for name, (value, (cloud, edge)) in owed.desired.items()
    }
