"""Watchers: who wants to hear about which changes, and how far behind each one may fall.

Every stored change is offered to every watcher of its resource; a watcher filters by namespace and
selectors and queues what matches. The queue holds the changes themselves (shared with the history
and with every other watcher), never a copy of their bytes.

A watcher whose client does not keep up is cut off once what it has not sent yet passes
``WatchLimits`` (bytes of object JSON or number of events), as kube-apiserver closes an
unresponsive watcher: its queue is dropped at once, the stream ends after the event it is sending,
and the client watches again from the last resourceVersion it got (``410 Gone`` if that is older
than the kept history). It is logged once, as a warning naming the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from api_server.selectors import Selector
from api_server.storage import Change

__all__ = ["WatchHub", "WatchLimits", "Watcher"]

log = logging.getLogger(__name__)

# Sentinel queued to end a watch (server shutdown or cut-off).
CLOSE = None

_MiB = 1024 * 1024


@dataclass(frozen=True)
class WatchLimits:
    """How far behind its client a watch may fall before it is closed."""

    max_events: int = 50_000
    # Bytes of object JSON queued (and in flight) for one watcher; one event is always allowed.
    max_bytes: int = 64 * _MiB
    # A cut-off client still gets the event being sent; if it takes no more of it for this many
    # seconds its connection is dropped.
    drain_timeout: float = 60.0


@dataclass(eq=False)
class Watcher:
    """One open watch request."""

    rkey: str
    namespace: str | None
    labels: Selector | None
    fields: Selector | None
    limits: WatchLimits = field(default_factory=WatchLimits)
    client: str = ""  # who is watching what, for the log
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)
    pending_bytes: int = 0  # JSON bytes of the queued changes and the one being sent
    closed: bool = False
    cut_off: bool = False
    on_cut_off: Callable[[], None] | None = None

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
        size = change.size
        if self.queue.qsize() >= self.limits.max_events or (
            self.pending_bytes and self.pending_bytes + size > self.limits.max_bytes
        ):
            self._cut_off()
            return
        self.pending_bytes += size
        self.queue.put_nowait(change)

    def sent(self, change: Change) -> None:
        """The stream has written ``change``: it no longer counts against the limits."""
        if not self.closed:
            self.pending_bytes -= change.size

    def _cut_off(self) -> None:
        log.warning(
            "closing the watch of %s: its client is %d events and %.1f MiB behind (limits: %d events, "
            "%.0f MiB); it may watch again from the last resourceVersion it got",
            self.client or self.rkey,
            self.queue.qsize(),
            self.pending_bytes / _MiB,
            self.limits.max_events,
            self.limits.max_bytes / _MiB,
        )
        while not self.queue.empty():
            self.queue.get_nowait()
        self.pending_bytes = 0
        self.cut_off = True
        self.close()
        if self.on_cut_off is not None:
            self.on_cut_off()

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
