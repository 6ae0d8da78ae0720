"""Edge nodes as ``v1 Node`` objects: heartbeats keep them Ready, silence or a will makes them NotReady.

Each heartbeat creates the node's Node (first time) or refreshes its status when something changed
or ``status_interval`` has passed, and renews its Lease in ``kube-node-lease``. Heartbeats of one
node are handled one at a time, the latest winning when they pile up.

The monitor marks a Ready node NotReady (``Ready`` = ``Unknown``, reason ``NodeStatusUnknown``)
once neither its Lease nor its Node's last heartbeat is younger than ``grace`` seconds, and sets
its devices' ``status.state`` to ``unknown``. It reads Leases and Nodes from the API (through
watches), not from memory: heartbeats are shared among replicas, and whichever replica got them
renewed the Lease. Before writing, it reads the Node and Lease again and writes with the Node's
resourceVersion, so two replicas never both flip a node. It acts only once this replica has run
for ``grace`` seconds itself (a node that heartbeats to another replica, or to this one once its
link is up, must have had its chance). A node's will (``online: false``) makes it NotReady at once;
the next heartbeat makes it Ready again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from cloud_sync.checks import valid_node_name
from cloud_sync.errors import ApiConflict, ApiError, ApiNotFound, ApiUnavailable
from cloud_sync.inventory import Inventory
from cloud_sync.kube import MERGE_PATCH, KubeApi, Obj
from cloud_sync.metrics import Metrics
from cloud_sync.node_objects import (
    lease_body,
    lease_renewal,
    node_body,
    not_ready_status,
    parse_time,
    ready_condition,
    ready_status,
    status_is_current,
)
from cloud_sync.recorder import Recorder
from cloud_sync.resources import EDGE_LABEL, LEASE_NAMESPACE, LEASES, NODES
from cloud_sync.retry import DELAYS, Backoff
from cloud_sync.status import StatusWriter
from cloud_sync.watches import Watch
from twin.link import Heartbeat

__all__ = ["NodeRegistry"]

log = logging.getLogger(__name__)


class NodeRegistry:
    def __init__(
        self,
        api: KubeApi,
        inventory: Inventory,
        status: StatusWriter,
        recorder: Recorder,
        metrics: Metrics,
        *,
        grace: float = 40.0,
        status_interval: float = 60.0,
        delays: tuple[float, ...] = DELAYS,
        watch_timeout: int = 300,
    ) -> None:
        self.api = api
        self.inventory = inventory
        self.status = status
        self.recorder = recorder
        self.metrics = metrics
        self.grace = grace
        self.status_interval = status_interval
        self.delays = delays
        self.nodes = Watch(
            api,
            NODES.path(),
            self._on_node,
            name="edge nodes",
            query={"labelSelector": EDGE_LABEL},
            timeout=watch_timeout,
        )
        self.leases = Watch(
            api, LEASES.path(LEASE_NAMESPACE), self._on_lease, name="node leases", timeout=watch_timeout
        )
        self._latest: dict[str, Heartbeat] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._group: asyncio.TaskGroup | None = None
        self._changed = asyncio.Event()
        self._refused: set[str] = set()
        #: Called whenever an edge Node appears or goes (the broker's admitted nodes).
        self.listeners: list[Callable[[], None]] = []
        #: Called on every change of an edge Node, its readiness included (the pod binder).
        self.node_listeners: list[Callable[[], None]] = []

    def ready_nodes(self) -> list[str]:
        return sorted(name for name, obj in self.nodes.objects.items() if _ready(obj) == "True")

    # -- watches ---------------------------------------------------------------------------------------

    def _on_node(self, kind: str, obj: Obj, old: Obj | None) -> None:
        if old is not None:
            self.metrics.node_readiness[_ready(old).lower()] -= 1
        if kind != "DELETED":
            self.metrics.node_readiness[_ready(obj).lower()] += 1
        self._changed.set()
        for listener in self.node_listeners:
            listener()
        if kind != "MODIFIED":
            for listener in self.listeners:
                listener()

    def _on_lease(self, kind: str, obj: Obj, old: Obj | None) -> None:
        self._changed.set()

    # -- heartbeats ------------------------------------------------------------------------------------

    def heartbeat(self, node: str, heartbeat: Heartbeat) -> None:
        if not valid_node_name(node):
            if node not in self._refused:
                self._refused.add(node)
                log.warning("heartbeat from %r ignored: not a valid node name", node[:80])
            return
        self._latest[node] = heartbeat
        if node not in self._workers and self._group is not None:
            self._workers[node] = self._group.create_task(self._worker(node), name=f"node {node}")

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for node in list(self._latest):
                self._workers[node] = group.create_task(self._worker(node), name=f"node {node}")
            try:
                await self._monitor()
            finally:
                self._group = None

    async def _worker(self, node: str) -> None:
        try:
            while (heartbeat := self._latest.pop(node, None)) is not None:
                if heartbeat.online:
                    await self._beat(node, heartbeat)
                else:
                    await self._mark_not_ready(node, "its connection to the cloud broker ended (its will)")
        except Exception:
            log.exception("handling a heartbeat of %s failed", node)
        finally:
            self._workers.pop(node, None)

    async def _beat(self, node: str, heartbeat: Heartbeat) -> None:
        backoff = Backoff(self.delays)
        fresh = False
        while True:
            try:
                now = time.time()
                current = None if fresh else self.nodes.objects.get(node)
                if current is None:
                    current = await self._read(NODES.path(name=node))
                if current is None:
                    current = await self.api.call("POST", NODES.path(), body=node_body(node, heartbeat, now))
                    self.metrics.api_writes.labels("nodes").inc()
                    log.info("node registered: node=%s ready=True", node)
                    self.recorder.record(
                        current, "RegisteredNode", f"Node {node} registered by edgetwin", type="Normal"
                    )
                elif not status_is_current(node, heartbeat, current, now, self.status_interval):
                    was = _ready(current)
                    version = (current.get("metadata") or {}).get("resourceVersion")
                    body = {
                        "metadata": {"resourceVersion": version},
                        "status": ready_status(node, heartbeat, current, now),
                    }
                    await self.api.call(
                        "PATCH",
                        NODES.path(name=node, subresource="status"),
                        body=body,
                        content_type=MERGE_PATCH,
                    )
                    self.metrics.api_writes.labels("nodes/status").inc()
                    if was != "True":
                        log.info("node ready: node=%s", node)
                        self.recorder.record(
                            current, "NodeReady", f"Node {node} status is now: NodeReady", type="Normal"
                        )
                await self._renew(node, str((current.get("metadata") or {}).get("uid", "")), now)
                return
            except ApiConflict:
                fresh = True
            except ApiUnavailable as exc:
                self.metrics.api_errors.labels("nodes", str(exc.status)).inc()
                delay = backoff.next()
                log.warning("heartbeat not written: node=%s error=%s retry_in=%.1fs", node, exc, delay)
                await asyncio.sleep(delay)
                fresh = True
            except ApiError as exc:
                self.metrics.api_errors.labels("nodes", str(exc.status)).inc()
                log.error("the API refuses the Node or Lease of %s: %s", node, exc)  # noqa: TRY400
                return

    async def _renew(self, node: str, uid: str, now: float) -> None:
        path = LEASES.path(LEASE_NAMESPACE, node)
        try:
            await self.api.call(
                "PATCH", path, body=lease_renewal(node, self.grace, now), content_type=MERGE_PATCH
            )
        except ApiNotFound:
            try:
                await self.api.call(
                    "POST", LEASES.path(LEASE_NAMESPACE), body=lease_body(node, self.grace, now, uid)
                )
            except ApiConflict as exc:
                if not exc.already_exists:
                    raise
                await self.api.call(
                    "PATCH", path, body=lease_renewal(node, self.grace, now), content_type=MERGE_PATCH
                )
        self.metrics.api_writes.labels("leases").inc()

    async def _read(self, path: str) -> Obj | None:
        try:
            return await self.api.get(path)
        except ApiNotFound:
            return None

    # -- NotReady --------------------------------------------------------------------------------------

    def _last_heartbeat(self, node: str, obj: Obj | None, lease: Obj | None) -> float | None:
        times = [
            parse_time(((lease or {}).get("spec") or {}).get("renewTime")),
            parse_time((ready_condition(obj) or {}).get("lastHeartbeatTime")),
        ]
        known = [t for t in times if t is not None]
        return max(known) if known else None

    async def _monitor(self) -> None:
        loop = asyncio.get_running_loop()
        acting_from = loop.time() + self.grace
        checked: dict[str, float] = {}
        while True:
            self._changed.clear()
            now = time.time()
            wake: float | None = acting_from - loop.time() if loop.time() < acting_from else None
            for node, obj in list(self.nodes.objects.items()):
                if _ready(obj) != "True":
                    continue
                last = self._last_heartbeat(node, obj, self.leases.objects.get(f"{LEASE_NAMESPACE}/{node}"))
                left = (last if last is not None else now) + self.grace - now
                recheck = checked.get(node, -1.0) + 1.0 - loop.time()
                if left > 0 or loop.time() < acting_from or recheck > 0:
                    left = max(left, recheck, 0.05)
                    wake = left if wake is None else min(wake, left)
                    continue
                if not await self._mark_not_ready(
                    node, f"no heartbeat for {self.grace:g} s", check_lease=True
                ):
                    # Renewed meanwhile, and the watch has not shown it yet: look again in a moment.
                    checked[node] = loop.time()
                    wake = 1.0 if wake is None else min(wake, 1.0)
            try:
                async with asyncio.timeout(wake):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _mark_not_ready(self, node: str, why: str, *, check_lease: bool = False) -> bool:
        """Make the Node NotReady and its devices' state unknown; whether this call did."""
        backoff = Backoff(self.delays)
        while True:
            try:
                obj = await self._read(NODES.path(name=node))
                if obj is None or _ready(obj) != "True":
                    return False
                now = time.time()
                if check_lease:
                    lease = await self._read(LEASES.path(LEASE_NAMESPACE, node))
                    last = self._last_heartbeat(node, obj, lease)
                    if last is not None and now - last < self.grace:
                        return False  # renewed meanwhile
                version = (obj.get("metadata") or {}).get("resourceVersion")
                body = {"metadata": {"resourceVersion": version}, "status": not_ready_status(obj, why, now)}
                await self.api.call(
                    "PATCH", NODES.path(name=node, subresource="status"), body=body, content_type=MERGE_PATCH
                )
                self.metrics.api_writes.labels("nodes/status").inc()
            except ApiConflict:
                continue
            except ApiUnavailable as exc:
                delay = backoff.next()
                log.warning("NotReady not written: node=%s error=%s retry_in=%.1fs", node, exc, delay)
                await asyncio.sleep(delay)
                continue
            except ApiError as exc:
                log.error("the API refuses the NotReady status of %s: %s", node, exc)  # noqa: TRY400
                return False
            log.warning("node not ready, its devices' state unknown: node=%s reason=%r", node, why)
            self.recorder.record(
                obj, "NodeNotReady", f"Node {node} status is now: NodeNotReady ({why})", type="Normal"
            )
            for placement in self.inventory.devices_of(node):
                self.status.mark_unknown(placement.device_id)
            return True


def _ready(obj: Obj) -> str:
    condition = ready_condition(obj)
    return str(condition.get("status", "Unknown")) if condition is not None else "Unknown"
