"""cloud-sync: one asyncio loop wiring the Kubernetes side to the cloud link (docs/cloud-sync.md).

``CloudSync.run`` starts, under one TaskGroup and each supervised (``supervision``):

* the watches of DeviceModels, then Devices (``inventory``: where each device goes), edge Nodes and
  their Leases (``nodes``), each in a thread feeding the loop;
* the broker's password file and ACL for the admitted nodes (``access``), before the link is up;
* the cloud link (``link``): hellos answered from the inventory (``mirror``), reports into status
  (``status``), desired values set at the edge into the spec (``desired``), heartbeats into Nodes
  and Leases (``nodes``);
* the stamping of desired values' versions (``stamping``), Events (``recorder``), metrics;
* the pods bound to edge nodes, their status and logs, and with ``binder`` the binding of pending
  pods (``pod_sync``);
* the live dashboard (``dashboard``), when the settings ask for one.

It needs a ``KubeApi`` (any cluster, or the embedded API server through its kubeconfig) and the
cloud broker's address. Several replicas may run against the same API and broker: they share the
up stream (a shared subscription) and write with resourceVersion preconditions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cloud_sync import collector
from cloud_sync.access import CLOUD_USER, AccessFiles, Admission, BrokerReload
from cloud_sync.checks import valid_node_name
from cloud_sync.dashboard import Dashboard, DashboardSettings
from cloud_sync.desired import EdgeDesiredWriter
from cloud_sync.inventory import Inventory
from cloud_sync.kube import KubeApi, Obj
from cloud_sync.link import CloudLink
from cloud_sync.metrics import Metrics
from cloud_sync.mirror import Mirror
from cloud_sync.nodes import NodeRegistry
from cloud_sync.pod_sync import PodSync
from cloud_sync.problems import Problems
from cloud_sync.recorder import Recorder
from cloud_sync.resources import DEVICE_MODELS, DEVICES
from cloud_sync.retry import DELAYS
from cloud_sync.stamping import Stamper
from cloud_sync.status import DEFAULT_CYCLE, StatusWriter
from cloud_sync.supervision import supervise
from cloud_sync.watches import Watch
from edgemqtt import BrokerAddress
from twin.link import EdgeDesired, Heartbeat, Hello, Listening, Report
from twin.link_pods import LogChunk, PodStatusReport

__all__ = ["CloudSync", "CloudSyncSettings"]

log = logging.getLogger(__name__)


def _replica() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class CloudSyncSettings:
    #: The cloud broker; without credentials in it, cloud-sync logs in as ``edgetwin-cloud``.
    broker: BrokerAddress
    #: The join token and the broker files (``access``).
    data_dir: Path
    #: Nodes admitted to the broker besides those the Devices and Nodes name.
    admit: tuple[str, ...] = ()
    #: Seconds without a heartbeat before a node is NotReady.
    grace: float = 40.0
    #: Seconds between Node status writes of a node whose status does not change.
    node_status_interval: float = 60.0
    #: Seconds between status writes of a device that sets no reportCycle.
    default_report_cycle: float = DEFAULT_CYCLE
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    #: Seconds a watch request lasts before it is made again (the server's ``timeoutSeconds``).
    watch_timeout: int = 300
    #: Back-off between retries of requests the API did not answer (429, 5xx).
    retry_delays: tuple[float, ...] = DELAYS
    replica: str = field(default_factory=_replica)
    #: The live dashboard (``cloud_sync.dashboard``); ``None``: none.
    dashboard: DashboardSettings | None = None
    #: Bind pending pods with a ``nodeSelector`` to Ready edge nodes (no scheduler: the embedded API
    #: server). Off for a real cluster, whose kube-scheduler binds them.
    binder: bool = False


class CloudSync:
    def __init__(
        self, settings: CloudSyncSettings, api: KubeApi, *, reload: BrokerReload | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.ready = asyncio.Event()
        self.metrics = Metrics()
        self.access = AccessFiles(settings.data_dir)
        broker = settings.broker
        if broker.username is None:
            broker = broker.with_credentials(CLOUD_USER, self.access.cloud_password())
        self.link = CloudLink(
            broker, self.metrics, client_id=f"edgetwin-cloud-{settings.replica}", replica=settings.replica
        )
        self.link.handlers = self
        self.link.on_listening = self._say_listening
        delays = settings.retry_delays
        self.inventory = Inventory()
        self.recorder = Recorder(api, self.metrics, instance=settings.replica)
        self.status = StatusWriter(
            api,
            self.inventory,
            lambda node, ack: self.link.send(node, "ack", ack),
            self.metrics,
            self.recorder,
            default_cycle=settings.default_report_cycle,
            delays=delays,
        )
        self.mirror = Mirror(self.inventory, self.link.send)
        self.stamper = Stamper(api, self.inventory, self.metrics, delays=delays)
        self.problems = Problems(self.inventory, self.recorder, self.status)
        self.desired_writer = EdgeDesiredWriter(
            api, self.inventory, self.link.send, self.recorder, self.metrics, delays=delays
        )
        self.registry = NodeRegistry(
            api,
            self.inventory,
            self.status,
            self.recorder,
            self.metrics,
            grace=settings.grace,
            status_interval=settings.node_status_interval,
            delays=delays,
            watch_timeout=settings.watch_timeout,
        )
        self.pods = PodSync(
            api,
            self.link.send,
            self.recorder,
            self.metrics,
            self.registry,
            replica=settings.replica,
            is_edge=lambda node: node in self.pods.mirror.runs_pods or node in self._admitted(),
            binder=settings.binder,
            delays=delays,
            watch_timeout=settings.watch_timeout,
        )
        self.mirror.pod_part = self.pods.sync_part
        self.admission = Admission(self.access, self._admitted, reload, delays=delays)
        self.registry.listeners.append(self.admission.changed)
        self.inventory.listeners += [
            self.mirror.on_placement,
            self.stamper.on_placement,
            self.problems.on_placement,
        ]
        self.models_watch = Watch(
            api,
            DEVICE_MODELS.path(),
            self.inventory.on_model,
            name="device models",
            timeout=settings.watch_timeout,
        )
        self.devices_watch = Watch(
            api, DEVICES.path(), self._on_device, name="devices", timeout=settings.watch_timeout
        )
        self.dashboard = Dashboard(self, settings.dashboard) if settings.dashboard is not None else None

    def _admitted(self) -> set[str]:
        return self.inventory.node_names() | set(self.registry.nodes.objects) | set(self.settings.admit)

    def _on_device(self, kind: str, obj: Obj, old: Obj | None) -> None:
        states = self.metrics.device_states
        if old is not None:
            states[str((old.get("status") or {}).get("state") or "none")] -= 1
        if kind != "DELETED":
            states[str((obj.get("status") or {}).get("state") or "none")] += 1
        self.inventory.on_device(kind, obj, old)
        node = (obj.get("spec") or {}).get("nodeName")
        if old is None or kind == "DELETED" or (old.get("spec") or {}).get("nodeName") != node:
            self.admission.changed()

    def reload_access(self) -> None:
        """Write the broker files again and reload the broker (after ``edgetwin cloud token --rotate``)."""
        self.admission.rewrite()

    # -- the up stream (``link.UpHandlers``) ------------------------------------------------------------

    def hello(self, node: str, message: Hello) -> None:
        self.mirror.answer(node, message)

    def _say_listening(self) -> None:
        """Every admitted node hears that this replica listens: one whose hello went while no replica
        was subscribed (all starting together, or none running) says it again at once."""
        body = Listening(replica=self.settings.replica, sent_at=int(time.time() * 1000))
        nodes = sorted(n for n in self.admission.nodes() if valid_node_name(n))
        for node in nodes:
            self.link.send(node, "listening", body)
        log.info("cloud link: told %d admitted nodes this replica listens", len(nodes))

    def report(self, node: str, message: Report) -> None:
        self.status.offer(node, message)

    def desired(self, node: str, message: EdgeDesired) -> None:
        self.desired_writer.offer(node, message)

    def heartbeat(self, node: str, message: Heartbeat) -> None:
        if not message.online:
            self.pods.node_offline(node)
        self.registry.heartbeat(node, message)

    def podstatus(self, node: str, message: PodStatusReport) -> None:
        self.pods.podstatus(node, message)

    def log_chunk(self, node: str, message: LogChunk) -> None:
        self.pods.log_chunk(node, message)

    # -- running ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        stop_metrics: Callable[[], None] | None = None
        if settings.metrics_port is not None:
            stop_metrics = self.metrics.serve(settings.metrics_port, settings.metrics_host)
        try:
            if self.dashboard is not None:
                await self.dashboard.start()  # first: a port in use fails the start at once
            # The collector runs when garbage piles up, not at every status write (``collector``).
            with collector.tuned():
                async with asyncio.TaskGroup() as group:

                    def start(name: str, piece: Callable[[], Awaitable[None]]) -> None:
                        group.create_task(supervise(name, piece, delays=settings.retry_delays), name=name)

                    start("events", self.recorder.run)
                    if self.dashboard is not None:
                        start("dashboard", self.dashboard.run)
                    start("device models watch", self.models_watch.run)
                    # Devices are placed once their models are known: no "unknown model" for every
                    # device at start-up.
                    await self.models_watch.synced.wait()
                    start("devices watch", self.devices_watch.run)
                    start("edge nodes watch", self.registry.nodes.run)
                    start("node leases watch", self.registry.leases.run)
                    start("stamper", self.stamper.run)
                    start("status writer", self.status.run)
                    for name, piece in self.pods.pieces():
                        start(name, piece)
                    for watch in (self.devices_watch, self.registry.nodes, self.registry.leases):
                        await watch.synced.wait()
                    await self.pods.synced()
                    await self.admission.apply()
                    start("broker access", self.admission.run)
                    start("node registry", self.registry.run)
                    start("edge desired values", self.desired_writer.run)
                    start("cloud link", self.link.run)
                    await self.link.connected.wait()
                    self.mirror.live = True
                    ready_nodes = self.registry.ready_nodes()
                    sent = self.mirror.resend(ready_nodes) + self.pods.go_live(ready_nodes)
                    log.info(
                        "cloud-sync ready: replica=%s devices=%d models=%d nodes=%d ready=%d resent=%d",
                        settings.replica,
                        len(self.inventory.devices),
                        len(self.inventory.models),
                        len(self.registry.nodes.objects),
                        len(ready_nodes),
                        sent,
                    )
                    self.ready.set()
        finally:
            self.ready.clear()
            if stop_metrics is not None:
                stop_metrics()
            if self.dashboard is not None:
                await self.dashboard.stop()
