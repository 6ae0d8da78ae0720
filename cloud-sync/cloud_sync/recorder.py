"""Kubernetes Events about Devices and Nodes: what ``kubectl describe`` shows a user.

An Event names its object by uid (``involvedObject``), which is how ``kubectl describe device``
finds it. Its name is derived from the object, its generation, the reason and the message, so
every replica that sees the same problem writes the same Event, and the second write is a
harmless ``AlreadyExists``. Events are written in the background, one at a time, from a bounded
queue: recording one never holds up the work that found the problem, and an API that is down
costs a log line, not memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal

from cloud_sync.errors import ApiConflict, ApiError
from cloud_sync.kube import KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.resources import EVENTS

__all__ = ["COMPONENT", "Recorder", "now_rfc3339"]

log = logging.getLogger(__name__)

COMPONENT = "edgetwin-cloud-sync"
_QUEUE = 1000


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Recorder:
    def __init__(self, api: KubeApi, metrics: Metrics, *, instance: str) -> None:
        self.api = api
        self.metrics = metrics
        self.instance = instance
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(_QUEUE)
        #: ``(reason, object name)`` of the Events written lately, newest last (diagnostics, tests).
        self.written: deque[tuple[str, str]] = deque(maxlen=_QUEUE)
        self._wrote = asyncio.Event()

    def record(
        self, obj: Obj, reason: str, message: str, *, type: Literal["Normal", "Warning"] = "Warning"
    ) -> None:
        """Queue an Event about ``obj`` (a Device, a Node...)."""
        metadata: dict[str, Any] = obj.get("metadata") or {}
        name = str(metadata.get("name", "unknown"))
        namespace = str(metadata.get("namespace") or "default")
        uid = str(metadata.get("uid", ""))
        digest = hashlib.sha256(
            f"{uid}|{metadata.get('generation', '')}|{reason}|{message}".encode()
        ).hexdigest()[:16]
        now = now_rfc3339()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{digest}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": name,
                "namespace": metadata.get("namespace", ""),
                "uid": uid,
                "resourceVersion": str(metadata.get("resourceVersion", "")),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
        }
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("too many Events waiting; not recording %s %s: %s", reason, name, message)

    async def wait_written(self, reason: str, name: str) -> None:
        """Until an Event of ``reason`` about object ``name`` has been written."""
        while (reason, name) not in self.written:
            self._wrote.clear()
            await self._wrote.wait()

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            namespace = event["metadata"]["namespace"]
            try:
                await self.api.call("POST", EVENTS.path(namespace), body=event)
                self.metrics.api_writes.labels("events").inc()
            except ApiConflict:
                pass  # another replica recorded the same Event
            except ApiError as exc:
                self.metrics.api_errors.labels("events", str(exc.status)).inc()
                log.warning(
                    "could not record Event %s about %s: %s",
                    event["reason"],
                    event["involvedObject"]["name"],
                    exc,
                )
                continue
            self.written.append((event["reason"], event["involvedObject"]["name"]))
            self._wrote.set()
