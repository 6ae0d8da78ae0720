"""Server push to the pages that are open: one Server-Sent Events stream per page, fed by the board.

A page's stream starts with ``event: snapshot`` (everything the page shows) and then gets
``event: changes`` messages: the board's changes gathered over ``interval`` seconds (a burst of
status writes is one message, not hundreds) and encoded once for every page. Each page has a
bounded queue; a page that cannot keep up (a stalled tab, a slow link) is cut off rather than
letting its queue grow, and its browser reconnects and starts again from a snapshot. Closing the
hub (cloud-sync stopping) ends every stream; the pages reconnect when cloud-sync is back.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from cloud_sync.dashboard.board import Board

__all__ = ["Hub", "Subscriber", "frame"]

log = logging.getLogger(__name__)

#: How long a browser waits before reconnecting a broken stream, in milliseconds (SSE ``retry``).
RECONNECT_MS = 1000


def frame(event: str, data: object) -> bytes:
    """One Server-Sent Events message (orjson writes no newline, so ``data`` is one line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Subscriber:
    """One open stream: the frames waiting for it, and ``None`` when it must end."""

    def __init__(self, limit: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(limit)
        self.closed = False

    def offer(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.info("a dashboard page fell behind; its stream is cut and it starts again from a snapshot")
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class Hub:
    def __init__(self, board: Board, *, interval: float = 0.1, limit: int = 256) -> None:
        self.board = board
        self.interval = interval
        self.limit = limit
        self.subscribers: set[Subscriber] = set()

    def subscribe(self) -> tuple[Subscriber, bytes]:
        """A new stream and its first frames (the reconnect delay and the snapshot)."""
        subscriber = Subscriber(self.limit)
        self.subscribers.add(subscriber)
        start = b"retry: " + str(RECONNECT_MS).encode() + b"\n\n" + frame("snapshot", self.board.snapshot())
        return subscriber, start

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        subscriber.close()

    def close(self) -> None:
        """End every stream (cloud-sync is stopping)."""
        for subscriber in list(self.subscribers):
            self.unsubscribe(subscriber)

    async def run(self) -> None:
        try:
            while True:
                await self.board.changed.wait()
                # Gather what else changes in this window into the same message.
                await asyncio.sleep(self.interval)
                self.board.changed.clear()
                changes = self.board.take_changes(build=bool(self.subscribers))
                if changes:
                    data = frame("changes", changes)
                    for subscriber in list(self.subscribers):
                        subscriber.offer(data)
        finally:
            # Pages reconnect and start from a snapshot of whatever runs next.
            self.close()
