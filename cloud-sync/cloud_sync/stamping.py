"""Stamping new desired values with their versions: the cluster side of ``cloud + 1``.

When a Device's ``spec.properties[].desired.value`` differs from what its
``twin.edgetwin.io/desired-versions`` annotation settled (a user's ``kubectl patch``, a new Device),
cloud-sync writes the annotation with the new pairs (``versions.cloud_writes``) as a merge patch
carrying the resourceVersion it read: a replica that stamps the same change a moment later gets a
409, reads the Device again, finds it stamped and does nothing. The stamp changes the Device
again; its watch event makes the settled values go down (``mirror``), the same on every replica.
"""

from __future__ import annotations

import asyncio
import logging

from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.inventory import Inventory, Placement
from cloud_sync.kube import MERGE_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.resources import DEVICES
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.versions import ANNOTATION, cloud_writes, format_stamps, read_stamps

__all__ = ["Stamper"]

log = logging.getLogger(__name__)


class Stamper:
    def __init__(
        self, api: KubeApi, inventory: Inventory, metrics: Metrics, *, delays: tuple[float, ...] = DELAYS
    ) -> None:
        self.api = api
        self.inventory = inventory
        self.metrics = metrics
        self.delays = delays
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()

    def on_placement(self, device_id: str, before: Placement | None, after: Placement | None) -> None:
        if after is not None and after.stamps_due and device_id not in self._queued:
            self._queued.add(device_id)
            self._queue.put_nowait(device_id)

    async def run(self) -> None:
        while True:
            device_id = await self._queue.get()
            self._queued.discard(device_id)
            await self._stamp(device_id)

    async def _stamp(self, device_id: str) -> None:
        namespace, _, name = device_id.partition("/")
        backoff = Backoff(self.delays)
        obj: Obj | None = self.inventory.devices.get(device_id)
        while True:
            try:
                if obj is None:
                    obj = await self.api.get(DEVICES.path(namespace, name))
                placement = self.inventory.placements.get(device_id)
                writes = cloud_writes(obj)
                if not writes or placement is None or placement.problem is not None:
                    return
                stamps = {**read_stamps(obj), **writes}
                metadata = obj.get("metadata") or {}
                patch = {
                    "metadata": {
                        "resourceVersion": metadata.get("resourceVersion"),
                        "annotations": {ANNOTATION: format_stamps(stamps)},
                    }
                }
                await self.api.call(
                    "PATCH", DEVICES.path(namespace, name), body=patch, content_type=MERGE_PATCH
                )
                self.metrics.api_writes.labels("devices").inc()
                log.info(
                    "desired values stamped: device=%s %s",
                    device_id,
                    " ".join(f"{n}={s.value}@{s.cloud}/{s.edge}" for n, s in sorted(writes.items())),
                )
                return
            except ApiConflict:
                obj = None  # changed meanwhile (another replica stamped it?): read it again
            except ApiNotFound:
                return
            except ApiUnavailable as exc:
                self.metrics.api_errors.labels("devices", str(exc.status)).inc()
                delay = backoff.next()
                log.warning(
                    "desired values not stamped: device=%s error=%s retry_in=%.1fs", device_id, exc, delay
                )
                await asyncio.sleep(delay)
                obj = None
            except ApiError as exc:
                self.metrics.api_errors.labels("devices", str(exc.status)).inc()
                log.error("the API refuses the desired versions of %s: %s", device_id, exc)  # noqa: TRY400
                return
