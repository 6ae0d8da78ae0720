"""Pod time: the one clock every delay of the pod runtime goes through, and the crash back-off.

Probes, restart back-off and grace periods are written in seconds of *pod time*, as a pod spec
states them. ``PodClock`` turns those into event-loop time. In production ``scale`` is 1; tests run
the same code with a small ``scale`` (a 10 s back-off passes in 0.1 s) and assert on the pod-time
figures the status reports, never on how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["BackOff", "CrashBackOff", "PodClock"]


class PodClock:
    """Pod-time sleeps, timeouts and a monotonic reading; ``scale`` loop seconds per pod second."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("the pod clock's scale must be positive")
        self.scale = scale

    def now(self) -> datetime:
        """Wall-clock time for timestamps in status and logs (never scaled)."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Pod seconds since an arbitrary origin."""
        return time.monotonic() / self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.scale)

    def timeout(self, seconds: float) -> asyncio.Timeout:
        return asyncio.timeout(max(0.0, seconds) * self.scale)

    @contextlib.asynccontextmanager
    async def deadline(self, seconds: float) -> AsyncIterator[None]:
        """Like ``timeout`` but swallowing the expiry: for "wait at most this long"."""
        with contextlib.suppress(TimeoutError):
            async with self.timeout(seconds):
                yield


@dataclass(frozen=True)
class BackOff:
    """Kubernetes' container restart back-off: 10 s doubling to 5 min, reset after 10 min running."""

    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 600.0


class CrashBackOff:
    """The back-off state of one container (or one image pull): the next delay and when to reset."""

    def __init__(self, policy: BackOff) -> None:
        self.policy = policy
        self._next = policy.initial

    def next_delay(self, ran_for: float | None = None) -> float:
        """The delay before the next attempt; ``ran_for`` (pod seconds) long enough resets it."""
        if ran_for is not None and ran_for >= self.policy.reset_after:
            self._next = self.policy.initial
        delay = self._next
        self._next = min(self._next * 2, self.policy.cap)
        return delay

    def reset(self) -> None:
        self._next = self.policy.initial
