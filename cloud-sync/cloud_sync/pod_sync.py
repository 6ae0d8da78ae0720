"""cloud-sync's pods: the pods bound to edge nodes carried to them, their status and logs carried back.

``PodSync`` puts the pod pieces together for ``CloudSync``, as devices are put together there:

* watches of bound pods (``spec.nodeName`` set), ConfigMaps and Secrets, in all namespaces,
  feeding the ``PodInventory`` (``pods``);
* the pods' part of every sync, and a ``down/pod`` for every change (``pod_mirror``);
* the nodes' ``up/podstatus`` into the pods' status, and pods being deleted finished once their
  node stopped them (``pod_status``);
* container logs fetched from the nodes (``pod_logs``), for the API server's ``pods/log``;
* with ``binder``, pending pods with a ``nodeSelector`` bound to Ready edge nodes (``binder``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from pydantic import BaseModel

from cloud_sync.binder import Binder
from cloud_sync.kube import KubeApi
from cloud_sync.metrics import Metrics
from cloud_sync.nodes import NodeRegistry
from cloud_sync.pod_logs import LogQuery, LogStreams
from cloud_sync.pod_mirror import PodMirror
from cloud_sync.pod_status import PodStatusWriter
from cloud_sync.pods import PodInventory
from cloud_sync.recorder import Recorder
from cloud_sync.resources import CONFIG_MAPS, PODS, SECRETS
from cloud_sync.retry import DELAYS
from cloud_sync.watches import Watch
from twin.link import DownKind, Hello
from twin.link_pods import LogChunk, PodAssignment, PodStatusReport

__all__ = ["PodSync"]

log = logging.getLogger(__name__)


class PodSync:
    def __init__(
        self,
        api: KubeApi,
        send: Callable[[str, DownKind, BaseModel], None],
        recorder: Recorder,
        metrics: Metrics,
        registry: NodeRegistry,
        *,
        replica: str,
        is_edge: Callable[[str], bool],
        binder: bool = False,
        delays: tuple[float, ...] = DELAYS,
        watch_timeout: int = 300,
    ) -> None:
        self.registry = registry
        self.inventory = PodInventory()
        self.status = PodStatusWriter(
            api,
            self.inventory,
            lambda node, ack: send(node, "ack", ack),
            metrics,
            recorder,
            delays=delays,
        )
        self.mirror = PodMirror(self.inventory, send, recorder, is_edge=is_edge, finish=self.status.finish)
        self.inventory.listeners.append(self.mirror.on_placement)
        self.logs = LogStreams(send, replica)
        self.watches = [
            Watch(
                api,
                PODS.path(),
                self.inventory.on_pod,
                name="pods on nodes",
                query={"fieldSelector": "spec.nodeName!="},
                timeout=watch_timeout,
            ),
            Watch(
                api,
                CONFIG_MAPS.path(),
                self.inventory.on_config_map,
                name="config maps",
                timeout=watch_timeout,
            ),
            Watch(api, SECRETS.path(), self.inventory.on_secret, name="secrets", timeout=watch_timeout),
        ]
        self.binder: Binder | None = None
        if binder:
            self.binder = Binder(
                api,
                registry.nodes,
                registry.ready_nodes,
                self.inventory.count_on,
                recorder,
                metrics,
                delays=delays,
                watch_timeout=watch_timeout,
            )
            registry.node_listeners.append(self.binder.nodes_changed)

    def pieces(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """What ``CloudSync`` runs, each supervised: the watches first."""
        pieces: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"{watch.name} watch", watch.run) for watch in self.watches
        ]
        pieces.append(("pod status writer", self.status.run))
        if self.binder is not None:
            pieces.append(("pod binder", self.binder.run))
        return pieces

    async def synced(self) -> None:
        for watch in self.watches:
            await watch.synced.wait()

    def go_live(self, ready_nodes: list[str]) -> int:
        """The link is up: send changes from now on, and every pod of the Ready nodes once more."""
        self.mirror.live = True
        return self.mirror.resend(ready_nodes)

    # -- the link ----------------------------------------------------------------------------------------

    def sync_part(self, node: str, hello: Hello) -> tuple[list[PodAssignment], list[str]]:
        return self.mirror.answer(node, hello)

    def podstatus(self, node: str, message: PodStatusReport) -> None:
        self.status.offer(node, message)

    def log_chunk(self, node: str, chunk: LogChunk) -> None:
        self.logs.chunk(node, chunk)

    def node_offline(self, node: str) -> None:
        self.logs.node_gone(node)

    # -- for the API server's pods/log ---------------------------------------------------------------

    async def pod_logs(self, namespace: str, name: str, query: LogQuery) -> AsyncGenerator[bytes, None]:
        """The log of a container of a pod bound to an edge node, from that node.

        ``LookupError``: not a pod cloud-sync carries, or the node cannot give that log;
        ``ConnectionError``/``TimeoutError``: its node is not there to ask.
        """
        key = f"{namespace}/{name}"
        placement = self.inventory.placements.get(key)
        if placement is None:
            raise LookupError(f"pod {key} is not bound to an edge node")
        node = placement.node
        if node in self.mirror.no_pods:
            raise LookupError(f"node {node} runs no pods (edgetwin node --pods)")
        if node in self.registry.nodes.objects and node not in self.registry.ready_nodes():
            raise ConnectionError(f"node {node} is not ready: its logs cannot be reached now")
        async with contextlib.aclosing(self.logs.stream(node, key, placement.uid, query)) as log:
            async for chunk in log:
                yield chunk
