"""DMI reports on their way into the twin: the latest per device and property, never refused.

KubeEdge's DMI server shares one rate limiter among all mappers (1 request/s, burst 100) and answers
a healthy mapper's reports with errors once a few devices report every second. Here a mapper's
report is checked, answered at once and kept as the latest value of its property; a worker hands
the pending values of each device to the twin (``TwinService.report``: the MQTT path's rules and
events) as fast as the twin takes them. When reports arrive faster than that, a newer value of a
property replaces the older one still waiting (counted in ``coalesced``) instead of queueing up:
memory is bounded by devices x properties, and the twin always gets the newest value.

Devices are served in the order they first became pending, so one chatty device does not starve
the others; states (``ReportDeviceStates``, and ``unknown`` when a mapper dies) travel the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from twin.errors import PermanentError
from twin.service import TwinService

__all__ = ["ReportQueue"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    reported: dict[str, str] = field(default_factory=dict)
    state: str = ""


class ReportQueue:
    """Pending reports per device; ``await queue.run()`` feeds them to the twin until cancelled."""

    def __init__(self, service: TwinService) -> None:
        self.service = service
        self._pending: dict[str, _Pending] = {}  # insertion order: the order devices are served in
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        #: Values taken, values replaced by a newer one before the twin took them, values the twin applied.
        self.received = 0
        self.coalesced = 0
        self.applied = 0

    def __len__(self) -> int:
        return len(self._pending)

    def report(self, device_id: str, values: Mapping[str, str]) -> None:
        """Keep the newest reported values of a device (already checked against its model)."""
        pending = self._entry(device_id)
        self.received += len(values)
        self.coalesced += sum(1 for name in values if name in pending.reported)
        pending.reported.update(values)

    def report_state(self, device_id: str, state: str) -> None:
        self._entry(device_id).state = state

    def _entry(self, device_id: str) -> _Pending:
        pending = self._pending.get(device_id)
        if pending is None:
            pending = self._pending[device_id] = _Pending()
            self._idle.clear()
            self._wakeup.set()
        return pending

    async def drained(self) -> None:
        """Wait until everything pending so far reached the twin (tests and benchmarks)."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                device_id = next(iter(self._pending))
                pending = self._pending.pop(device_id)
                await self._apply(device_id, pending)
            self._idle.set()

    async def _apply(self, device_id: str, pending: _Pending) -> None:
        # A device removed meanwhile, or a value the twin refuses after all, costs only its own report.
        try:
            if pending.reported:
                await self.service.report(device_id, pending.reported)
                self.applied += len(pending.reported)
        except PermanentError as exc:
            log.warning("DMI report for %s not applied: %s", device_id, exc)
        except Exception:  # the queue goes on for every other device
            log.exception("DMI report for %s not applied", device_id)
        try:
            if pending.state:
                await self.service.report_state(device_id, pending.state)
        except PermanentError as exc:
            log.warning("DMI state %r for %s not applied: %s", pending.state, device_id, exc)
        except Exception:
            log.exception("DMI state %r for %s not applied", pending.state, device_id)
