"""``kubectl logs`` on the single-machine stack: the embedded API server reads logs through cloud-sync.

``edgetwin cloud`` runs both in one process. The API server may not import cloud-sync (nor the
other way round), so it takes a ``PodLogs`` provider, and this is the one: it turns the request's
options into cloud-sync's ``LogQuery`` and streams what cloud-sync fetches from the pod's node. The
API server starts first (cloud-sync needs its kubeconfig), so the provider finds cloud-sync through
a holder filled in once it is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api_server import LogOptions, PodLogs
    from cloud_sync import CloudSync

__all__ = ["CloudHolder", "pod_logs_through"]


class CloudHolder:
    """The running cloud-sync, once there is one."""

    def __init__(self) -> None:
        self.cloud: CloudSync | None = None


def pod_logs_through(holder: CloudHolder) -> PodLogs:
    async def pod_logs(pod: dict[str, Any], options: LogOptions) -> AsyncIterator[bytes]:
        from cloud_sync import LogQuery

        cloud = holder.cloud
        if cloud is None or not cloud.ready.is_set():
            raise ConnectionError("cloud-sync is still starting; try again in a moment")
        metadata = pod.get("metadata") or {}
        query = LogQuery(
            container=options.container,
            previous=options.previous,
            follow=options.follow,
            tail=options.tail_lines,
            timestamps=options.timestamps,
            limit_bytes=options.limit_bytes,
            since_seconds=options.since_seconds,
        )
        namespace = str(metadata.get("namespace") or "default")
        # Closed with this generator (the client went away): the node is told to stop at once.
        async with contextlib.aclosing(
            cloud.pods.pod_logs(namespace, str(metadata.get("name")), query)
        ) as log:
            async for chunk in log:
                yield chunk

    return pod_logs
