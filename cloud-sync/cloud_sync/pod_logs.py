"""A container's log fetched from its node over the cloud link: what ``kubectl logs`` needs.

``LogStreams.stream`` sends the node a ``LogRequest`` (``down/logs``) naming this replica, and yields
the log as the node's ``LogChunk``s arrive on ``reply/{replica}`` (cloud-sync's link hands them to
``chunk``), in order. How it ends says what happened:

* ``LookupError`` before anything was yielded: the node cannot give that log (no such pod or
  container on it, a container waiting to start, no previous instance), with the node's reason;
* ``TimeoutError``: the node did not answer within ``answer_timeout`` seconds (not connected,
  or not running pods);
* ``ConnectionError``: the node went away (its will) before it answered;
* otherwise the log, then the end. A followed log ends when the container instance ends, when the
  node goes away, or when the consumer stops iterating (the node is then told to close it).

A followed stream is renewed every ``renew_every`` seconds; a node drops a stream nobody renews,
so a replica that dies leaves nothing running on the nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from twin.link import DownKind
from twin.link_pods import LogChunk, LogRequest

__all__ = ["LogQuery", "LogStreams"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogQuery:
    """Which log, and how much of it (``kubectl logs`` options)."""

    container: str = ""
    previous: bool = False
    follow: bool = False
    tail: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    since_seconds: int | None = None


@dataclass
class _Open:
    node: str
    chunks: asyncio.Queue[LogChunk | None] = field(default_factory=asyncio.Queue)


class LogStreams:
    def __init__(
        self,
        send: Callable[[str, DownKind, BaseModel], None],
        replica: str,
        *,
        answer_timeout: float = 10.0,
        renew_every: float = 20.0,
    ) -> None:
        self.send = send
        self.replica = replica
        self.answer_timeout = answer_timeout
        self.renew_every = renew_every
        self._open: dict[str, _Open] = {}

    def chunk(self, node: str, chunk: LogChunk) -> None:
        """A chunk from ``node`` (the link's reply topic)."""
        stream = self._open.get(chunk.id)
        if stream is None or stream.node != node:
            log.debug("log chunk %s from %s for no open stream: ignored", chunk.id[:40], node)
            return
        stream.chunks.put_nowait(chunk)

    def node_gone(self, node: str) -> None:
        """``node``'s connection ended: its streams end too."""
        for stream in self._open.values():
            if stream.node == node:
                stream.chunks.put_nowait(None)

    async def stream(self, node: str, pod: str, uid: str, query: LogQuery) -> AsyncGenerator[bytes, None]:
        """The log of a container of ``pod`` (``namespace/name``, with ``uid``) on ``node``.

        The first item may be empty: the node has the log open and nothing to send yet.
        """
        request = LogRequest(
            id=uuid.uuid4().hex,
            reply_to=self.replica,
            pod=pod,
            uid=uid,
            container=query.container,
            previous=query.previous,
            follow=query.follow,
            tail=query.tail,
            timestamps=query.timestamps,
            limit_bytes=query.limit_bytes,
            since_seconds=query.since_seconds,
        )
        stream = self._open[request.id] = _Open(node)
        renewing: asyncio.Task[None] | None = None
        ended = False
        try:
            self.send(node, "logs", request)
            if query.follow:
                renewing = asyncio.create_task(self._renew(node, request), name=f"renew logs of {pod}")
            waiting: dict[int, LogChunk] = {}
            expected = 0
            while True:
                chunk = await self._next(stream, node, first=expected == 0, follow=query.follow)
                if chunk is None:
                    if expected == 0:
                        raise ConnectionError(f"node {node} went away before it sent the log of {pod}")
                    return
                waiting[chunk.seq] = chunk
                while expected in waiting:
                    chunk = waiting.pop(expected)
                    if chunk.end:
                        ended = True
                        if chunk.error and expected == 0:
                            raise LookupError(chunk.error)
                        if chunk.error:
                            log.info("log of %s on %s ended: %s", pod, node, chunk.error)
                        return
                    expected += 1
                    yield chunk.content
        finally:
            del self._open[request.id]
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing
            if not ended:
                self.send(node, "logs", request.model_copy(update={"op": "close"}))

    async def _next(self, stream: _Open, node: str, *, first: bool, follow: bool) -> LogChunk | None:
        # A followed log may be quiet for hours; the node's first answer, and every part of a log
        # that is not followed, come at once or not at all.
        timeout = self.answer_timeout if first or not follow else None
        try:
            async with asyncio.timeout(timeout):
                return await stream.chunks.get()
        except TimeoutError:
            raise TimeoutError(
                f"node {node} did not answer within {self.answer_timeout:g} s: is it connected, "
                "and does it run pods (edgetwin node --pods)?"
            ) from None

    async def _renew(self, node: str, request: LogRequest) -> None:
        renewal = request.model_copy(update={"op": "renew"})
        while True:
            await asyncio.sleep(self.renew_every)
            self.send(node, "logs", renewal)
