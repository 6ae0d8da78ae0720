"""Back-off for requests to the Kubernetes API that may succeed later (429, 5xx, no answer)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff"]

DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class Backoff:
    """The next delay after each failure, growing to the last of ``delays``; ``reset`` after a success."""

    delays: tuple[float, ...] = DELAYS
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return self.delays[min(self.failures, len(self.delays)) - 1] if self.delays else 1.0

    def reset(self) -> None:
        self.failures = 0
