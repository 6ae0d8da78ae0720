"""Watchers: who wants to hear about which changes, and the queue each one reads from.

Every stored change is offered to every watcher of its resource; a watcher filters by namespace and
selectors and queues what matches. A watcher that falls too far behind (``max_queue``) is closed
rather than allowed to grow without bound; its client re-watches from the last resourceVersion it
saw, as clients do when a real server closes a watch.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from api_server.selectors import Selector
from api_server.storage import Change

__all__ = ["WatchHub", "Watcher"]

log = logging.getLogger(__name__)

# Sentinel queued to end a watch (server shutdown or overflow).
CLOSE = None


@dataclass(eq=False)
class Watcher:
    """One open watch request."""

    rkey: str
    namespace: str | None
    labels: Selector | None
    fields: Selector | None
    max_queue: int = 50_000
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def matches(self, change: Change) -> bool:
        if change.rkey != self.rkey:
            return False
        if self.namespace is not None and change.namespace != self.namespace:
            return False
        if self.labels is not None and not self.labels(change.obj):
            return False
        return self.fields is None or self.fields(change.obj)

    def offer(self, change: Change) -> None:
        if self.closed or not self.matches(change):
            return
        if self.queue.qsize() >= self.max_queue:
            log.warning("closing a watch of %s that fell %d changes behind", self.rkey, self.max_queue)
            self.close()
            return
        self.queue.put_nowait(change)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(CLOSE)


class WatchHub:
    """All open watchers; the store calls ``publish`` after each write."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[Watcher]] = {}

    def add(self, watcher: Watcher) -> None:
        self._watchers.setdefault(watcher.rkey, set()).add(watcher)

    def remove(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.rkey, set()).discard(watcher)

    def publish(self, change: Change) -> None:
        for watcher in list(self._watchers.get(change.rkey, ())):
            watcher.offer(change)

    def close_all(self) -> None:
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()

    def __len__(self) -> int:
        return sum(len(w) for w in self._watchers.values())
