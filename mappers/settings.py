"""Settings of the mapper runner: cycles and delays, with defaults for a real gateway.

Tests pass small values to control time instead of waiting for it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunnerSettings"]


@dataclass(frozen=True)
class RunnerSettings:
    #: Poll period of a property whose ``collectCycle`` is 0 (seconds).
    default_collect_cycle: float = 1.0
    #: Delays between reconnect attempts to a failed device; the last one repeats.
    reconnect_delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)
    #: How long to wait for the twin's membership answer before asking again (seconds).
    membership_retry: float = 2.0
    #: Ask the twin for the whole device list again this often, in case an update was missed.
    membership_refresh: float = 60.0
    #: Delays between attempts to reach the MQTT broker at start.
    broker_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)

    def reconnect_delay(self, attempt: int) -> float:
        delays = self.reconnect_delays or (1.0,)
        return delays[min(attempt, len(delays) - 1)]
