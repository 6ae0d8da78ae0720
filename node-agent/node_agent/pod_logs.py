"""Serving ``kubectl logs`` from the gateway: a container's log streamed up to the replica that asked.

cloud-sync sends a ``LogRequest`` on ``down/logs``; the node reads the log from its pod manager
(``PodManager.logs``: the current or previous instance, ``tail``, ``follow``, ``timestamps``) and
publishes it in ``LogChunk``s on ``reply/{replica}``: lines batched up to ``CHUNK_BYTES``, numbered
from 0, and a last chunk with ``end`` (and ``error`` when the log cannot be read: no such pod or
container, a container waiting to start). ``limit_bytes`` and ``since_seconds`` are applied here.

A followed stream lasts while the container instance runs and the asker renews it: one that is not
renewed within ``idle_timeout`` seconds (its replica died, the client left without a word) is closed. At
most ``max_streams`` streams run at once; one more is refused with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from node_agent.metrics import NodeMetrics
from node_agent.pods import PodManager
from twin.link_pods import LogChunk, LogRequest, reply_topic

__all__ = ["LogServer"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 32 * 1024
#: Seconds after which a stream with nothing to send yet says it is open (an empty chunk).
OPEN_AFTER = 0.2
_END = object()
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)? ")


class _LinkDown(Exception):
    """A chunk could not be sent: the stream ends (the asker times out or sees the link drop)."""


@dataclass
class _Stream:
    request: LogRequest
    task: asyncio.Task[None]
    renewed: float


class LogServer:
    def __init__(
        self,
        manager: PodManager,
        node: str,
        metrics: NodeMetrics,
        *,
        max_streams: int = 16,
        idle_timeout: float = 60.0,
    ) -> None:
        self.manager = manager
        self.node = node
        self.metrics = metrics
        self.max_streams = max_streams
        self.idle_timeout = idle_timeout
        self._publish: Callable[[str, bytes], bool] | None = None
        self._streams: dict[str, _Stream] = {}
        self._group: asyncio.TaskGroup | None = None
        #: Set while no stream is open (the agent's shutdown and tests wait on it).
        self.idle = asyncio.Event()
        self.idle.set()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def attach(self, publish: Callable[[str, bytes], bool]) -> None:
        self._publish = publish

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                await asyncio.Event().wait()
            finally:
                self._group = None
                for stream in self._streams.values():
                    stream.task.cancel()

    def request(self, request: LogRequest) -> None:
        loop = asyncio.get_running_loop()
        stream = self._streams.get(request.id)
        if request.op == "renew":
            if stream is not None:
                stream.renewed = loop.time()
            return
        if request.op == "close":
            if stream is not None:
                stream.task.cancel()
            return
        if stream is not None:
            return  # the same request delivered again
        if self._group is None:
            return
        if len(self._streams) >= self.max_streams:
            self._answer(LogChunk.of(request.id, 0, end=True, error=self._too_many()), request.reply_to)
            return
        task = self._group.create_task(self._serve(request), name=f"logs {request.pod} {request.id}")
        self._streams[request.id] = _Stream(request, task, loop.time())
        self.idle.clear()

    def _too_many(self) -> str:
        return f"node {self.node} is serving {self.max_streams} log streams already; try again later"

    def _answer(self, chunk: LogChunk, reply_to: str | None = None) -> bool:
        stream = self._streams.get(chunk.id)
        reply_to = reply_to or (stream.request.reply_to if stream is not None else None)
        if reply_to is None or self._publish is None:
            return False
        return self._publish(reply_topic(self.node, reply_to), chunk.model_dump_json().encode())

    async def _serve(self, request: LogRequest) -> None:
        lines: asyncio.Queue[object] = asyncio.Queue()
        reader = asyncio.create_task(self._read(request, lines), name=f"read log {request.pod}")
        end: LogChunk | None = None
        try:
            seq, error = await self._forward(request, lines)
            end = LogChunk.of(request.id, seq, end=True, error=error)
        except _LinkDown:
            log.info("log stream of %s cut: the cloud link is down", request.pod)
        except Exception:  # one stream's bug must not take the others, or the link, down
            log.exception("the log stream of %s failed", request.pod)
            end = LogChunk.of(request.id, 0, end=True, error="the node failed to read this log (see its log)")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if end is not None:
                self._answer(end)
            self._streams.pop(request.id, None)
            if not self._streams:
                self.idle.set()

    async def _forward(self, request: LogRequest, lines: asyncio.Queue[object]) -> tuple[int, str | None]:
        """Publish what the reader queues; the next sequence number and the error, at the end."""
        loop = asyncio.get_running_loop()
        seq = 0
        left = request.limit_bytes
        item: object = None
        try:
            # A log that cannot be read says so at once; one that can but has nothing yet (a quiet
            # container, followed) says "open" with an empty chunk, so the asker can answer its client.
            async with asyncio.timeout(OPEN_AFTER):
                item = await lines.get()
        except TimeoutError:
            if not self._answer(LogChunk.of(request.id, 0)):
                raise _LinkDown from None
            seq = 1
        while True:
            if item is None:
                try:
                    renewed = self._streams[request.id].renewed
                    async with asyncio.timeout(renewed + self.idle_timeout - loop.time()):
                        item = await lines.get()
                except TimeoutError:
                    if loop.time() - self._streams[request.id].renewed < self.idle_timeout:
                        continue
                    log.info("log stream of %s not renewed for %g s; closed", request.pod, self.idle_timeout)
                    return seq, None
            batch = bytearray()
            while True:
                if item is _END:
                    return self._flush(request, seq, batch), None
                if isinstance(item, str):
                    return self._flush(request, seq, batch), item
                assert isinstance(item, bytes)
                if left is not None:
                    item = item[:left]
                    left -= len(item)
                batch += item
                if left == 0:
                    return self._flush(request, seq, batch), None
                if len(batch) >= CHUNK_BYTES or lines.empty():
                    break
                item = lines.get_nowait()
            seq = self._flush(request, seq, batch)
            item = None

    def _flush(self, request: LogRequest, seq: int, batch: bytearray) -> int:
        if not batch:
            return seq
        if not self._answer(LogChunk.of(request.id, seq, bytes(batch))):
            raise _LinkDown
        self.metrics.sent.labels("logs").inc()
        return seq + 1

    async def _read(self, request: LogRequest, lines: asyncio.Queue[object]) -> None:
        since = None
        if request.since_seconds is not None:
            since = datetime.now(UTC).timestamp() - request.since_seconds
        held = self.manager.held().get(request.pod)
        if held is None or (request.uid and held.pod.metadata.uid != request.uid):
            lines.put_nowait(f"pod {request.pod} is not on node {self.node}")
            return
        try:
            async for line in self.manager.logs(
                request.pod,
                request.container or None,
                previous=request.previous,
                tail=request.tail,
                follow=request.follow,
                timestamps=request.timestamps or since is not None,
            ):
                if since is not None:
                    stamped = _stamp(line)
                    if stamped is not None and stamped < since:
                        continue
                    if not request.timestamps:
                        line = line.split(b" ", 1)[1] if b" " in line else line  # noqa: PLW2901
                lines.put_nowait(line)
        except LookupError as exc:
            lines.put_nowait(str(exc.args[0]) if exc.args else str(exc))
            return
        except OSError as exc:
            lines.put_nowait(f"the log of {request.pod} cannot be read on node {self.node}: {exc}")
            return
        lines.put_nowait(_END)


def _stamp(line: bytes) -> float | None:
    """Seconds since the epoch of a line's CRI timestamp (``None`` if it has none)."""
    match = _STAMP.match(line)
    if match is None:
        return None
    zone = (match.group(2) or b"Z").decode().replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(match.group(1).decode() + zone).timestamp()
    except ValueError:
        return None
