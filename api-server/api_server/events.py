"""Watch events as bytes: each change encoded once per form and shared by every watcher.

A change to a 15 MB object watched by a thousand clients must not become a thousand copies of
15 MB. An event is a fixed head (``{"type":"MODIFIED","object":``), the object's JSON and a fixed
tail; the JSON is made once, when the change is stored (``Change.json()``). Watchers that ask for
another form (a Table for ``kubectl get -w``, another served version of a CRD) share one encoding
per form, kept on the change.

``EventWriter`` sends small events in batches and a large one in slices, waiting for the client to
take each slice (aiohttp drains past 64 KiB), so a watcher holds no more than a slice and its
socket's buffers beyond the shared bytes, however large the object.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from api_server.resources import ResourceType
from api_server.storage import Change
from api_server.tables import table

__all__ = ["EventWriter", "bookmark", "encode", "error_event"]

SLICE = 64 * 1024
_TAIL = b"}\n"
_HEADS = {kind: b'{"type":"' + kind.encode() + b'","object":' for kind in ("ADDED", "MODIFIED", "DELETED")}


def encode(change: Change, rtype: ResourceType, *, as_table: bool) -> tuple[bytes, bytes]:
    """The head and the shared body of ``change``'s event, as ``rtype`` shows it."""
    if as_table:
        body = change.form(
            ("table", rtype.api_version),
            lambda: orjson.dumps(table(rtype, [change.obj], list_meta={"resourceVersion": str(change.rv)})),
        )
    elif change.obj.get("apiVersion") != rtype.api_version:
        body = change.form(
            ("json", rtype.api_version), lambda: orjson.dumps({**change.obj, "apiVersion": rtype.api_version})
        )
    else:
        body = change.json()
    return _HEADS[change.type], body


def bookmark(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta}
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def error_event(status: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"


class EventWriter:
    """Events onto one watch response: small ones batched, large ones sliced."""

    def __init__(self, response: web.StreamResponse) -> None:
        self._response = response
        self._batch: list[bytes] = []
        self._batched = 0

    async def event(self, head: bytes, body: bytes) -> None:
        if len(body) < SLICE:
            self.add(head + body + _TAIL)
            if self._batched >= SLICE:
                await self.flush()
            return
        self.add(head)
        await self.flush()
        view = memoryview(body)
        for start in range(0, len(view), SLICE):
            await self._response.write(view[start : start + SLICE])
        self.add(_TAIL)

    def add(self, line: bytes) -> None:
        self._batch.append(line)
        self._batched += len(line)

    async def flush(self) -> None:
        if self._batch:
            data = b"".join(self._batch)
            self._batch.clear()
            self._batched = 0
            await self._response.write(data)
