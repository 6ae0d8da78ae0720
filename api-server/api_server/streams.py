"""Watch requests over HTTP: what the client missed, then every change as it comes.

``?watch=true`` (or a ``/watch/`` path) answers with newline-delimited JSON events over chunked
HTTP, as kube-apiserver does: first the backlog (every current object as ``ADDED`` for a watch from
``0`` or with ``sendInitialEvents``; otherwise the kept changes after the given resourceVersion, or
one ``ERROR`` 410 event if they are gone), then changes as they are stored, ``BOOKMARK`` events
while idle when asked for, until ``timeoutSeconds``, the client leaves, the server stops, or the
watch is cut off for falling too far behind (``watch.py``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import deque

from aiohttp import web

from api_server.errors import BadRequest, Gone
from api_server.events import EventWriter, bookmark, encode, error_event
from api_server.resources import ResourceType
from api_server.routing import Target, bool_param, selectors, wants_table
from api_server.selectors import parse_field_selector
from api_server.storage import Change, Store
from api_server.watch import Watcher, WatchHub, WatchLimits

__all__ = ["WatchStreams"]

log = logging.getLogger(__name__)

_BATCH_EVENTS = 500  # events taken from the queue between two flushes


def _drop(request: web.Request, client: str) -> None:
    """Reset the connection of a cut-off watch whose client has stopped reading altogether.

    A plain close would leave the kernel holding what is queued for the client (megabytes) until it
    reads; with linger 0 the connection is reset and its buffers freed at once.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    log.info("dropping the connection of the cut-off watch of %s: its client reads nothing", client)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class WatchStreams:
    """The watch requests of one server."""

    def __init__(self, store: Store, hub: WatchHub, *, bookmark_interval: float, limits: WatchLimits) -> None:
        self.store = store
        self.hub = hub
        self.bookmark_interval = bookmark_interval
        self.limits = limits

    async def serve(self, request: web.Request, target: Target) -> web.StreamResponse:
        rtype = target.rtype
        labels, fields = selectors(request)
        if target.name:
            by_name = parse_field_selector(f"metadata.name={target.name}")
            fields = by_name if fields is None else (lambda o, a=fields, b=by_name: a(o) and b(o))
        namespace = target.namespace if rtype.namespaced else None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{rtype.qualified} by {peer[0]}:{peer[1]}" if peer else rtype.qualified
        watcher = Watcher(rtype.key, namespace, labels, fields, limits=self.limits, client=client)
        as_table = wants_table(request)
        bookmarks = bool_param(request, "allowWatchBookmarks") and not as_table
        send_initial = bool_param(request, "sendInitialEvents")
        rv_param = request.query.get("resourceVersion", "")
        timeout_text = request.query.get("timeoutSeconds", "")
        try:
            deadline = time.monotonic() + float(timeout_text) if timeout_text else None
        except ValueError as exc:
            raise BadRequest("timeoutSeconds must be a number") from exc

        store = self.store
        backlog: deque[Change]
        error: bytes | None = None
        if rv_param in ("", "0") or send_initial:
            backlog = deque(
                Change(store.rv, "ADDED", rtype.key, obj)
                for obj in store.items(rtype.key, namespace)
                if (labels is None or labels(obj)) and (fields is None or fields(obj))
            )
        else:
            try:
                since = int(rv_param)
            except ValueError as exc:
                raise BadRequest(f"invalid resourceVersion {rv_param!r}") from exc
            try:
                backlog = deque(c for c in store.changes_since(since) if watcher.matches(c))
            except Gone as exc:
                backlog, error = deque(), error_event(exc.to_status())
        self.hub.add(watcher)
        drop: asyncio.TimerHandle | None = None

        def drop_later() -> None:
            # The stream ends after the event being sent; a client that takes none of it is dropped.
            nonlocal drop
            drop = asyncio.get_running_loop().call_later(self.limits.drain_timeout, _drop, request, client)

        watcher.on_cut_off = drop_later
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            writer = EventWriter(response)
            if error is not None:
                writer.add(error)
                await writer.flush()
                return response
            while backlog and not watcher.closed:
                # popped as sent: the backlog's encodings are not all held at once
                change = backlog.popleft()
                await writer.event(*encode(change, rtype, as_table=as_table))
            if send_initial and bookmarks and not watcher.closed:
                writer.add(bookmark(rtype, store.rv, initial_end=True))
            await writer.flush()
            await self._stream(
                writer, rtype, watcher, as_table=as_table, bookmarks=bookmarks, deadline=deadline
            )
        except (ConnectionResetError, asyncio.CancelledError):
            log.debug("watch of %s closed by the client", rtype.key)
            raise
        finally:
            self.hub.remove(watcher)
            watcher.closed = True
            if drop is not None:
                drop.cancel()
        return response

    async def _stream(
        self,
        writer: EventWriter,
        rtype: ResourceType,
        watcher: Watcher,
        *,
        as_table: bool,
        bookmarks: bool,
        deadline: float | None,
    ) -> None:
        while True:
            wait = self.bookmark_interval
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            change: Change | None
            try:
                async with asyncio.timeout(wait):
                    change = await watcher.queue.get()
            except TimeoutError:
                if bookmarks:
                    writer.add(bookmark(rtype, self.store.rv))
                    await writer.flush()
                continue
            taken = 0
            while change is not None:
                await writer.event(*encode(change, rtype, as_table=as_table))
                watcher.sent(change)
                taken += 1
                if watcher.queue.empty() or taken >= _BATCH_EVENTS:
                    break
                change = watcher.queue.get_nowait()
            await writer.flush()
            if change is None:
                return
