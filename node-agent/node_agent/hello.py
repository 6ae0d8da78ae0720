"""The node's hello: what it holds, announced on every connect so that only what changed comes back.

The hello names each device the twin holds with its generation, the ``revision`` of the assignment
it came in (kept on the Device as an annotation) and the version pairs of its desired values
(docs/cloud-link.md). The node keeps what it announced (``SentHello``), to apply only the sync
that answers its latest hello, on the connection it was sent on.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twin.link import HeldDevice, Hello
from twin.service import TwinService
from twin.wire import now_ms

if TYPE_CHECKING:
    from node_agent.pod_link import PodLink

__all__ = ["REVISION_ANNOTATION", "SentHello", "make_hello"]

#: Where a node keeps the ``revision`` of the assignment a device came in (docs/cloud-link.md).
REVISION_ANNOTATION = "node.edgetwin.io/assignment-revision"


@dataclass(frozen=True)
class SentHello:
    id: str
    #: Per device: generation and desired values' pairs, as announced.
    held: dict[str, tuple[int, dict[str, tuple[int, int]]]]
    at: float
    connection: int


def _revision(service: TwinService, device_id: str) -> str:
    device = service.devices.get(device_id)
    return device.metadata.annotations.get(REVISION_ANNOTATION, "") if device is not None else ""


def make_hello(service: TwinService, connection: int, pods: PodLink | None) -> tuple[SentHello, Hello]:
    """The hello to send now on connection number ``connection``, and what it announces."""
    held = {
        device_id: (generation, {n: (v.cloud, v.edge) for n, v in versions.items()})
        for device_id, (generation, versions) in service.held().items()
    }
    sent = SentHello(uuid.uuid4().hex, held, asyncio.get_running_loop().time(), connection)
    body = Hello(
        node=service.node,
        id=sent.id,
        sent_at=now_ms(),
        devices={
            device_id: HeldDevice(
                generation=generation, revision=_revision(service, device_id), desired=desired
            )
            for device_id, (generation, desired) in held.items()
        },
        pods=pods.held() if pods is not None else None,
    )
    return sent, body
