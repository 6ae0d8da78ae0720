"""The cloud link's durable outbox: what the node owes the cloud, kept on disk (docs/cloud-link.md).

What the node owes is never copied here: it is *derived*. The twin store already holds every
device's values on disk (desired values ``fsync``-ed before they are acknowledged to the app that
set them, reported values and state written behind within ``flush_interval``, docs/twin.md); this
outbox keeps only, per device, how far the cloud has acknowledged them:

* ``reported`` / ``observed``: per property, the timestamp of the last reported value and of the
  last observed desired value an ``Ack`` covered;
* ``state``: the ``(state, last_online)`` an ``Ack`` covered;
* ``desired``: per property, the version pair of the desired value the cloud is known to hold (from
  a ``Sync``, a ``DeviceChange``, or an ``Ack`` of an ``up/desired``).

What is owed is then whatever the twin holds beyond these marks (``owed_report``, ``owed_desired``):

* coalesced per property by construction, and always in its latest state: only the twin's
  current value of a property can be owed, so an older value never goes after a newer one;
* bounded: a handful of numbers per property, whatever the telemetry rate;
* surviving ``kill -9``: after a restart the twin store's values and these marks give the same
  answer. Marks are only ever moved by what the cloud confirmed, so a mark lost in a crash makes
  the node send a value again (harmless: every message is idempotent), never forget one. What a
  crash can lose is what the twin itself loses: reported values of the last ``flush_interval``,
  which the mapper reads from the device again.

The marks live in ``DATA_DIR/outbox.json``, replaced atomically (temporary file, ``fsync``,
rename) shortly after they change; an unreadable file is moved aside and the node starts with no
marks, which means sending everything once more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from twin.engine import DeviceTwin, TwinValue
from twin.errors import StoreCorrupt
from twin.models import Device, cycle_seconds
from twin.store import AtomicJSONStorage

__all__ = [
    "DEFAULT_REPORT_CYCLE",
    "OUTBOX_FILE",
    "Marks",
    "Outbox",
    "Owed",
    "ReportRules",
    "cloud_state",
    "owed_desired",
    "owed_report",
]

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.json"
#: Seconds between two reports of a device none of whose reported properties sets a ``reportCycle``:
#: KubeEdge's mapper framework reports every second by default (``DefaultReportCycle``).
DEFAULT_REPORT_CYCLE = 1.0
_FORMAT = 1

Pair = tuple[int, int]
_K = TypeVar("_K")


@dataclass(slots=True)
class Marks:
    """How far the cloud has acknowledged one device."""

    reported: dict[str, int] = field(default_factory=dict)
    observed: dict[str, int] = field(default_factory=dict)
    state: tuple[str, str] | None = None
    desired: dict[str, Pair] = field(default_factory=dict)

    def merged(self, other: Marks) -> Marks:
        """Both marks together: the newer of each (what is acknowledged or already on its way)."""
        return Marks(
            reported=_newest(self.reported, other.reported),
            observed=_newest(self.observed, other.observed),
            state=other.state if other.state is not None else self.state,
            desired=_newest(self.desired, other.desired),
        )

    def advance(self, owed: Owed) -> None:
        """What an acknowledgement of a message carrying ``owed`` means."""
        for name, value in owed.reported.items():
            self.reported[name] = max(self.reported.get(name, -1), value.timestamp)
        for name, value in owed.observed.items():
            self.observed[name] = max(self.observed.get(name, -1), value.timestamp)
        if owed.state is not None:
            self.state = owed.state
        for name, (_, pair) in owed.desired.items():
            self.desired[name] = max(self.desired.get(name, (0, 0)), pair)

    def to_json(self) -> dict[str, Any]:
        return {
            "reported": self.reported,
            "observed": self.observed,
            "state": list(self.state) if self.state is not None else None,
            "desired": {name: list(pair) for name, pair in self.desired.items()},
        }

    @classmethod
    def from_json(cls, raw: Any) -> Marks:
        """``ValueError``/``TypeError``/``KeyError`` for anything this module did not write."""
        state = raw["state"]
        return cls(
            reported={str(k): _int(v) for k, v in raw["reported"].items()},
            observed={str(k): _int(v) for k, v in raw["observed"].items()},
            state=None if state is None else (str(state[0]), str(state[1])),
            desired={str(k): (_int(v[0]), _int(v[1])) for k, v in raw["desired"].items()},
        )


def _newest(a: dict[_K, Any], b: dict[_K, Any]) -> dict[_K, Any]:
    merged = dict(a)
    for key, value in b.items():
        if key not in merged or value > merged[key]:
            merged[key] = value
    return merged


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    return value


@dataclass(frozen=True, slots=True)
class Owed:
    """What one device owes: values with their timestamps, state, edge-set desired values with pairs."""

    reported: dict[str, TwinValue] = field(default_factory=dict)
    observed: dict[str, TwinValue] = field(default_factory=dict)
    state: tuple[str, str] | None = None
    desired: dict[str, tuple[str, Pair]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reported or self.observed or self.state is not None or self.desired)

    @property
    def values(self) -> int:
        """How many values this is (the outbox depth counts these)."""
        return len(self.reported) + len(self.observed) + len(self.desired) + (self.state is not None)


@dataclass(frozen=True, slots=True)
class ReportRules:
    """What of a device goes up in reports, and how often (docs/cloud-link.md, "Reporting")."""

    properties: frozenset[str]
    state: bool
    cycle: float

    @classmethod
    def of(cls, device: Device) -> ReportRules:
        reported = [p for p in device.spec.properties if p.reportToCloud]
        cycles = [
            cycle_seconds(p.reportCycle, what=f"{device.id} {p.name} reportCycle")
            for p in reported
            if p.reportCycle
        ]
        # KubeEdge reports a device's state unless its stateReport says not to.
        state_report = device.spec.stateReport
        return cls(
            properties=frozenset(p.name for p in reported),
            state=state_report is None or state_report.reportToCloud,
            cycle=min(cycles) if cycles else DEFAULT_REPORT_CYCLE,
        )


def cloud_state(state: str) -> str:
    """The device state as the CRD's ``status.state`` spells it."""
    return {"ok": "online", "disconnected": "offline"}.get(state, state)


def owed_report(twin: DeviceTwin, rules: ReportRules, marks: Marks) -> Owed:
    """Reported values, observed desired values and state of ``twin`` beyond ``marks``."""
    reported: dict[str, TwinValue] = {}
    observed: dict[str, TwinValue] = {}
    for name in rules.properties:
        prop = twin.properties.get(name)
        if prop is None or prop.deleted:
            continue
        if prop.actual is not None and prop.actual.timestamp > marks.reported.get(name, -1):
            reported[name] = prop.actual
        if prop.expected is not None and prop.expected.timestamp > marks.observed.get(name, -1):
            observed[name] = prop.expected
    state = (twin.state, twin.last_online) if rules.state else None
    return Owed(reported, observed, state if state != marks.state else None)


def owed_desired(twin: DeviceTwin, marks: Marks) -> Owed:
    """Desired values whose version pair is newer than the one the cloud holds: set at the edge."""
    desired: dict[str, tuple[str, Pair]] = {}
    for name, prop in twin.properties.items():
        if prop.deleted or prop.expected is None:
            continue
        pair = (prop.expected_version.cloud, prop.expected_version.edge)
        if pair > marks.desired.get(name, (0, 0)):
            desired[name] = (prop.expected.value, pair)
    return Owed(desired=desired)


class Outbox:
    """The marks of every device, in ``data_dir/outbox.json``, and the message sequence numbers."""

    def __init__(self, data_dir: Path, *, save_delay: float = 0.2) -> None:
        self.path = Path(data_dir) / OUTBOX_FILE
        self.save_delay = save_delay
        self._marks: dict[str, Marks] = {}
        # Sequence numbers never repeat across restarts, even without the file: an ack still queued
        # for the node's session must not match a new message.
        self._seq = time.time_ns() // 1000
        self._changed = asyncio.Event()

    def load(self) -> None:
        try:
            raw: dict[str, Any] | None = AtomicJSONStorage(self.path).read()
            if raw is None:
                return
            if raw.get("format") != _FORMAT:
                raise StoreCorrupt(f"{self.path} has format {raw.get('format')!r}, not {_FORMAT}")
            marks = {str(i): Marks.from_json(m) for i, m in raw["devices"].items()}
            seq = _int(raw["seq"])
        except StoreCorrupt as exc:
            self._quarantine(str(exc))
            return
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            self._quarantine(f"{self.path} does not hold an outbox: {exc!r}")
            return
        self._marks = marks
        self._seq = max(self._seq, seq)

    def _quarantine(self, reason: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.{time.time_ns()}.corrupt")
        os.replace(self.path, aside)
        log.error(
            "the cloud link's outbox could not be read (%s); moved to %s: the node sends everything "
            "it holds to the cloud once more",
            reason,
            aside,
        )

    # -- marks --------------------------------------------------------------------------------------

    def marks(self, device_id: str) -> Marks:
        marks = self._marks.get(device_id)
        if marks is None:
            marks = self._marks[device_id] = Marks()
        return marks

    def acknowledge(self, device_id: str, owed: Owed) -> None:
        self.marks(device_id).advance(owed)
        self._changed.set()

    def cloud_holds(self, device_id: str, desired: dict[str, Pair]) -> None:
        """The cloud holds exactly these desired values' pairs for the device (a sync said so)."""
        self.marks(device_id).desired = dict(desired)
        self._changed.set()

    def cloud_holds_some(self, device_id: str, desired: dict[str, Pair]) -> None:
        """The cloud holds these pairs (a device change), others as they were."""
        self.marks(device_id).desired.update(desired)
        self._changed.set()

    def states_unconfirmed(self) -> None:
        """The devices' states go up again, acknowledged or not (a new connection: while the node was
        away the cloud may have shown them as ``unknown``, its node being NotReady)."""
        for marks in self._marks.values():
            marks.state = None
        self._changed.set()

    def forget(self, device_id: str) -> None:
        if self._marks.pop(device_id, None) is not None:
            self._changed.set()

    def keep_only(self, device_ids: set[str]) -> None:
        for device_id in [d for d in self._marks if d not in device_ids]:
            self.forget(device_id)

    def next_seq(self) -> int:
        self._seq += 1
        self._changed.set()
        return self._seq

    # -- disk ---------------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        return orjson.dumps(
            {
                "format": _FORMAT,
                "seq": self._seq,
                "devices": {device_id: m.to_json() for device_id, m in self._marks.items()},
            }
        )

    async def save(self) -> None:
        self._changed.clear()
        await asyncio.to_thread(AtomicJSONStorage(self.path).write_bytes, self.snapshot())

    @property
    def unsaved(self) -> bool:
        return self._changed.is_set()

    async def keep_saved(self) -> None:
        """Write the marks a little after each change, until cancelled."""
        while True:
            await self._changed.wait()
            await asyncio.sleep(self.save_delay)
            try:
                await self.save()
            except OSError:
                # Marks that are not saved only mean sending again after a restart.
                log.exception("could not write the outbox %s; will retry", self.path)
                await asyncio.sleep(5.0)
