"""When the garbage collector runs in cloud-sync: when garbage piles up, not at every burst of writes.

Why: cloud-sync keeps every Device it watches (its JSON, its placement, the assignment a node is
sent), about 70 objects the collector tracks per device: 700,000 with 10,000 devices. CPython
starts a young collection whenever the tracked objects made minus those freed pass 700 (its
default), which the short-lived objects of status writes do many times a second (a writer task and
its request, a report waiting for its write, the watch event of the write); every 10th is a
middle collection and every 100th a full one, which walks all 700,000. Measured with 10,000 devices
at 1,000 status writes/s (``bench/sync.py``, part 3): a full collection every ~4 s, each stopping
the loop for 0.3-0.5 s, the three generations together 15-25 % of cloud-sync's CPU; and they free
nothing, because what cloud-sync drops is freed by reference counting (it makes next to no
reference cycles).

With the first threshold at 10,000 the objects of writes in progress come and go between
collections, and the full collection after every 100 young ones is as rare. Garbage that only the
collector frees (reference cycles) still starts a collection every 10,000 objects left behind, so
it is still freed. CPython's thresholds are per process: ``tuned()`` sets them while a cloud-sync
runs and puts back what was set before when the last one in the process stops.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["THRESHOLDS", "tuned"]

#: ``gc.set_threshold`` while cloud-sync runs: young collections after 10,000 net new tracked objects
#: (CPython: 700); the middle and full generations as CPython sets them (every 10th of the one before).
THRESHOLDS = (10_000, 10, 10)

#: What was set before the first cloud-sync of the process started, once per cloud-sync running.
_before: list[tuple[int, int, int]] = []


@contextlib.contextmanager
def tuned() -> Iterator[None]:
    """The collector's thresholds set for cloud-sync until the block ends (nested: the outermost)."""
    _before.append(_before[0] if _before else gc.get_threshold())
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        before = _before.pop()
        if not _before:
            gc.set_threshold(*before)
