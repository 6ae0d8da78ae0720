"""Watching one kind of object: list, then watch from the list's resourceVersion, in a thread.

The ``kubernetes`` client is blocking, so each watch's HTTP stream is read in a thread of its own,
which hands every line to the event loop (``call_soon_threadsafe``); the loop decodes it, keeps the
objects (``Watch.objects``) and calls the handler, in order. The watch is then the one writer of
its cache, and handlers run in the loop like everything else.

A watch that ends (the server's ``timeoutSeconds``, a dropped connection) is started again from the
last resourceVersion seen (bookmarks included), after a back-off if it failed; ``410 Gone`` (the
server no longer keeps that version) lists everything again and hands the differences to the
handler as ADDED, MODIFIED and DELETED events, so nothing is missed either way. Cancelling ``run``
cuts the HTTP stream, which ends its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from cloud_sync.errors import ApiError, ApiGone, ApiNotFound, ApiUnavailable, api_error
from cloud_sync.kube import KubeApi, Obj, StreamResponse

__all__ = ["Watch", "WatchHandler", "object_key"]

log = logging.getLogger(__name__)

#: Called with the event type (``ADDED``, ``MODIFIED``, ``DELETED``), the object, and the object as
#: it was before (``None`` if new).
WatchHandler = Callable[[str, Obj, Obj | None], None]

_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


def object_key(obj: Obj) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects."""
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


def _resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


class Watch:
    """The objects at ``path`` (a list path), kept current; ``synced`` once the first list is in."""

    def __init__(
        self,
        api: KubeApi,
        path: str,
        handler: WatchHandler,
        *,
        name: str,
        query: Mapping[str, str] | None = None,
        timeout: int = 300,
        delays: tuple[float, ...] = _DELAYS,
    ) -> None:
        self.api = api
        self.path = path
        self.name = name
        self.handler = handler
        self.query = dict(query or {})
        self.timeout = timeout
        self.delays = delays
        self.objects: dict[str, Obj] = {}
        self.synced = asyncio.Event()
        #: Called after ``handler`` with the same arguments (the dashboard follows the watches this way).
        self.listeners: list[WatchHandler] = []

    async def run(self) -> None:
        resource_version = ""
        failures = 0
        while True:
            try:
                if not resource_version:
                    items, resource_version = await self.api.list_all(self.path, self.query)
                    self._replace(items)
                    self.synced.set()
                resource_version = await self._stream(resource_version)
                if failures:
                    log.info("watch of %s is back", self.name)
                failures = 0
                continue
            except ApiGone:
                log.info("watch of %s: version %s is gone; listing again", self.name, resource_version)
                resource_version = ""
                continue
            except ApiNotFound as exc:
                if not failures:
                    log.error(  # noqa: TRY400 - the reason is the whole story
                        "cannot watch %s: the API does not serve it (%s); are the CRDs installed? "
                        "(kubectl apply -f crds/)",
                        self.name,
                        exc,
                    )
            except ApiError as exc:
                if not failures:
                    log.warning("watch of %s failed: %s; trying again", self.name, exc)
            failures += 1
            await asyncio.sleep(self.delays[min(failures, len(self.delays)) - 1])

    # -- the stream ---------------------------------------------------------------------------------

    async def _stream(self, resource_version: str) -> str:
        """Apply watch events until the stream ends; the last resourceVersion seen."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        streams: list[StreamResponse] = []
        stopped = threading.Event()
        query: dict[str, str | int] = {
            **self.query,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self.timeout,
        }

        def push(item: tuple[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                stream = self.api.open_stream(self.path, query, read_timeout=self.timeout + 30)
                streams.append(stream)
                if stopped.is_set():
                    stream.close()
                    return
                for line in stream.lines():
                    push(("line", line))
                push(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which decides
                push(("error", exc))

        thread = threading.Thread(target=pump, name=f"watch {self.name}", daemon=True)
        thread.start()
        try:
            while True:
                what, item = await queue.get()
                if what == "end":
                    return resource_version
                if what == "error":
                    if isinstance(item, ApiError):
                        raise item
                    raise ApiUnavailable(f"watch of {self.name} broke off: {item}") from item
                resource_version = self._event(item) or resource_version
        finally:
            stopped.set()
            for stream in streams:
                stream.close()
            # A thread still opening its stream sees ``stopped`` once it is open and closes it.
            await asyncio.shield(asyncio.to_thread(thread.join, 5))

    def _event(self, line: bytes) -> str:
        try:
            event = orjson.loads(line)
            kind, obj = event["type"], event["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ApiUnavailable(f"watch of {self.name}: unreadable event {line[:200]!r}") from exc
        if kind == "ERROR":
            status = obj if isinstance(obj, dict) else {}
            code = int(status.get("code") or 500)
            if code == 410:
                raise ApiGone(str(status.get("message", "gone")), status=410, reason="Expired")
            raise api_error(code, str(status.get("reason", "")), str(status.get("message", "")))
        resource_version = _resource_version(obj)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self._apply(kind, obj)
        return resource_version

    # -- the cache -----------------------------------------------------------------------------------

    def _apply(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self.objects.pop(key, None) if kind == "DELETED" else self.objects.get(key)
        if kind != "DELETED":
            self.objects[key] = obj
        self._handle(kind, obj, old)

    def _replace(self, items: list[Obj]) -> None:
        """A fresh list: hand the differences from what was known to the handler."""
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self.objects if k not in fresh]:
            self._handle("DELETED", self.objects[key], self.objects.pop(key))
        for key, obj in fresh.items():
            old = self.objects.get(key)
            self.objects[key] = obj
            if old is None:
                self._handle("ADDED", obj, None)
            elif _resource_version(old) != _resource_version(obj):
                self._handle("MODIFIED", obj, old)

    def _handle(self, kind: str, obj: Obj, old: Obj | None) -> None:
        for handler in (self.handler, *self.listeners):
            try:
                handler(kind, obj, old)
            except Exception:
                # A handler bug must not stop the watch: the next event may well be handled.
                log.exception("handling a %s event of %s %s failed", kind, self.name, object_key(obj))
