"""Which reported values go to the twin, and when: only changes, at most once per ``reportCycle``.

A device may be polled every 100 ms while its twin should hear about it once a second; a value that
did not change is not sent again. Pure bookkeeping with the time passed in, so it is tested without
clocks or sockets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Reading", "ReportBuffer"]


@dataclass(frozen=True, slots=True)
class Reading:
    value: str
    timestamp_ms: int


@dataclass
class _Slot:
    cycle: float
    sent: str | None = None
    sent_at: float = -math.inf
    pending: Reading | None = None


@dataclass
class ReportBuffer:
    """Per device: ``offer`` each reading, ``take`` what is due, sleep until ``next_due``."""

    _slots: dict[str, _Slot] = field(default_factory=dict)

    def offer(self, name: str, reading: Reading, *, cycle: float, now: float, force: bool = False) -> None:
        """A value was read. ``force`` sends it at the next ``take`` even if unchanged or early."""
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = _Slot(cycle)
        slot.cycle = cycle
        if force:
            slot.pending = reading
            slot.sent_at = -math.inf
            slot.sent = None
            return
        if reading.value == slot.sent:
            # Unchanged, or changed back before the cycle let the change out.
            slot.pending = None
            return
        slot.pending = reading

    def take(self, now: float) -> dict[str, Reading]:
        """The readings due now; they count as sent."""
        due: dict[str, Reading] = {}
        for name, slot in self._slots.items():
            if slot.pending is not None and now >= slot.sent_at + slot.cycle:
                due[name] = slot.pending
                slot.sent = slot.pending.value
                slot.sent_at = now
                slot.pending = None
        return due

    def next_due(self) -> float | None:
        """When the earliest pending reading may go, or ``None`` if nothing waits."""
        times = [s.sent_at + s.cycle for s in self._slots.values() if s.pending is not None]
        return min(times) if times else None

    def forget(self) -> None:
        """After a reconnect: everything read next is sent, changed or not."""
        self._slots.clear()

    def last_sent(self, name: str) -> str | None:
        slot = self._slots.get(name)
        return slot.sent if slot is not None else None
