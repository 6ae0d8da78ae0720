"""What the nodes reported for one device and is not in its status yet, and how it goes into the status.

Pure: no I/O. ``Pending`` collects the reports that arrive for a device between two status writes,
property by property, the newest value (by the timestamp the node's twin gave it) winning, so any
number of reports within a report cycle make one write. ``merge_status`` turns it into the Device's
new ``status``:

* ``status.twins[]``: ``propertyName``, ``reported {value, metadata {timestamp, type}}`` and
  ``observedDesired {value, metadata {timestamp}}``, timestamps as strings of milliseconds (as
  KubeEdge writes them). A value never replaces one with a newer timestamp already in the status
  (another replica, a late resend), and properties the Device does not report (``reportToCloud``
  not true) or does not have are left out, whatever a node sends.
* ``status.state`` (the CRD's ``online offline unhealthy unknown``; a node's ``ok`` is ``online``
  and ``disconnected`` ``offline``) and ``status.lastOnlineTime``, unless the Device's
  ``stateReport.reportToCloud`` is false.
* ``status.conditions[]``: the ``Valid`` condition cloud-sync sets on a Device it cannot send down.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from twin.link import DeviceReport, ReportedValue

__all__ = ["STATES", "Pending", "Ticket", "crd_state", "merge_status"]

STATES = frozenset({"online", "offline", "unhealthy", "unknown"})
_STATE_ALIASES = {"ok": "online", "disconnected": "offline"}
_arrivals = itertools.count(1)
_CONDITION_KEYS = ("status", "reason", "message")


def crd_state(state: str) -> str:
    """A node's device state as the CRD spells it (``ok`` is ``online``, ``disconnected`` ``offline``)."""
    return _STATE_ALIASES.get(state, state)


@dataclass(eq=False)
class Ticket:
    """One ``up/report`` (or ``up/desired``) message: acknowledged when all its devices are done."""

    node: str
    kind: str
    seq: int
    remaining: set[str]
    #: A part of it could not be handled (a bug): never acknowledged, so that the node sends it again.
    failed: bool = False


@dataclass
class Pending:
    """What is to go into one device's status at its next write."""

    node: str = ""
    twins: dict[str, ReportedValue] = field(default_factory=dict)
    observed: dict[str, ReportedValue] = field(default_factory=dict)
    #: The state and when it arrived (arrival order decides between states: they carry no time).
    state: tuple[str, int] | None = None
    last_online: str | None = None
    conditions: dict[str, dict[str, Any]] = field(default_factory=dict)
    tickets: list[Ticket] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.twins or self.observed or self.state or self.conditions or self.tickets)

    def add(self, node: str, report: DeviceReport, ticket: Ticket | None) -> None:
        self.node = node
        _newest(self.twins, report.twins)
        _newest(self.observed, report.observed_desired)
        if report.state is not None:
            self.state = (report.state, next(_arrivals))
        if report.last_online:
            self.last_online = report.last_online
        if ticket is not None and ticket not in self.tickets:
            self.tickets.append(ticket)

    def set_state(self, state: str) -> None:
        self.state = (state, next(_arrivals))

    def snapshot(self) -> Pending:
        return Pending(
            self.node,
            dict(self.twins),
            dict(self.observed),
            self.state,
            self.last_online,
            dict(self.conditions),
            list(self.tickets),
        )

    def settle(self, written: Pending) -> list[Ticket]:
        """Forget what ``written`` (a snapshot) held, unless newer arrived since; its tickets."""
        for mine, theirs in ((self.twins, written.twins), (self.observed, written.observed)):
            for name, value in theirs.items():
                if mine.get(name) is value:
                    del mine[name]
        if self.state == written.state:
            self.state = None
        if self.last_online == written.last_online:
            self.last_online = None
        for name, condition in written.conditions.items():
            if self.conditions.get(name) is condition:
                del self.conditions[name]
        self.tickets = [t for t in self.tickets if t not in written.tickets]
        return written.tickets


def _newest(held: dict[str, ReportedValue], incoming: Mapping[str, ReportedValue]) -> None:
    for name, value in incoming.items():
        old = held.get(name)
        if old is None or value.timestamp >= old.timestamp:
            held[name] = value


def _timestamp(entry: Any) -> int:
    try:
        return int(str(((entry or {}).get("metadata") or {}).get("timestamp", "0")))
    except ValueError:
        return 0


def merge_status(
    obj: Mapping[str, Any], pending: Pending, types: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The Device's new status (``None``: nothing to change) and what was left out, and why.

    ``types``: the lower-case DeviceModel type of each property (``reported.metadata.type``).
    """
    spec = obj.get("spec") or {}
    # A copy to change; through JSON, as it came: ~8x cheaper than copy.deepcopy, once per write.
    status: dict[str, Any] = orjson.loads(orjson.dumps(obj.get("status") or {}))
    properties = {p.get("name"): p for p in spec.get("properties") or [] if isinstance(p, dict)}
    left_out: list[str] = []
    twins: list[dict[str, Any]] = [t for t in status.get("twins") or [] if isinstance(t, dict)]
    by_name = {t.get("propertyName"): t for t in twins}
    changed = False
    for key, incoming in (("reported", pending.twins), ("observedDesired", pending.observed)):
        for name, value in incoming.items():
            prop = properties.get(name)
            if prop is None:
                left_out.append(f"{name}: not a property of the Device")
                continue
            if prop.get("reportToCloud") is not True:
                left_out.append(f"{name}: its reportToCloud is not true")
                continue
            twin = by_name.get(name)
            if twin is None:
                twin = by_name[name] = {"propertyName": name}
                twins.append(twin)
            if value.timestamp <= _timestamp(twin.get(key)):
                continue  # what the status holds is as new or newer
            metadata: dict[str, str] = {"timestamp": str(value.timestamp)}
            if key == "reported":
                metadata["type"] = types.get(name, "string")
            twin[key] = {"value": value.value, "metadata": metadata}
            changed = True
    if changed:
        status["twins"] = [t for t in twins if "reported" in t or "observedDesired" in t]
    state_report = spec.get("stateReport")
    reports_state = not (isinstance(state_report, dict) and state_report.get("reportToCloud") is False)
    if pending.state is not None:
        state = crd_state(pending.state[0])
        if not reports_state:
            left_out.append("state: stateReport.reportToCloud is false")
        elif state not in STATES:
            left_out.append(f"state: {state[:40]!r} is not one of {', '.join(sorted(STATES))}")
        elif status.get("state") != state:
            status["state"] = state
            changed = True
    if pending.last_online and reports_state and status.get("lastOnlineTime") != pending.last_online:
        status["lastOnlineTime"] = pending.last_online
        changed = True
    for condition in pending.conditions.values():
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        current = next((c for c in conditions if c.get("type") == condition["type"]), None)
        if current is not None and all(
            current.get(k) == condition[k] for k in ("status", "reason", "message")
        ):
            continue
        status["conditions"] = [c for c in conditions if c is not current] + [condition]
        changed = True
    return (status if changed else None), left_out
