"""The gateway host: one edge node's store, twin service, in-process mappers, pods and cloud link
under one TaskGroup.

``edgetwin node`` and ``edgetwin up`` both run a ``Gateway``; this is the one place where a node's
pieces are started, supervised (``node_agent.supervision``) and stopped. The twin store is opened
first and closed last, so whatever way the gateway stops (Ctrl-C, SIGTERM, a piece that failed
for good) the reported values it holds are flushed to disk. The twin serves from its store before
any other piece starts: a node with its cloud unreachable serves its devices at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgemqtt.client import BrokerAddress
from mappers.settings import RunnerSettings
from node_agent.settings import CloudSettings
from node_agent.supervision import PieceFailed, RestartPolicy, supervise
from twin.errors import PermanentError
from twin.manifests import Manifests
from twin.memory import lean_allocator
from twin.service import TwinService
from twin.store import TwinStore

if TYPE_CHECKING:
    from mappers import MapperRunner, Registry
    from node_agent.cloud_link import CloudLink
    from node_agent.dmi.server import DmiServer
    from node_agent.metrics import NodeMetrics
    from node_agent.pod_link import PodLink
    from node_agent.pods import PodManager, PodSettings

__all__ = ["Gateway", "GatewaySettings", "InvalidGatewaySettings", "Piece"]

log = logging.getLogger(__name__)

#: A piece of the gateway: its name, the coroutine function that runs it, and its restart policy.
Piece = tuple[str, Callable[[], Awaitable[None]], RestartPolicy]


@dataclass(frozen=True)
class GatewaySettings:
    """What one gateway runs; the defaults run the single-machine stack's node."""

    node: str
    broker: BrokerAddress
    data_dir: Path
    #: Devices and models to serve; ``None`` serves what the data directory holds.
    manifests: Manifests | None = None
    #: Host mappers in this process: ``None`` for none, an empty list for every installed plugin.
    mappers: Sequence[str] | None = None
    legacy_topics: bool = True
    #: Serve KubeEdge's DMI for mapper-framework mappers on this Unix socket (``node_agent.dmi``).
    dmi_socket: Path | None = None
    flush_interval: float = 0.5
    runner: RunnerSettings = field(default_factory=RunnerSettings)
    #: The cloud to join; the node then receives its devices from it (no ``manifests``).
    cloud: CloudSettings | None = None
    #: Serve Prometheus metrics on this port (``None``: not at all).
    metrics_port: int | None = None
    metrics_refresh: float = 5.0
    #: Host the embedded MQTT broker at ``broker``'s address (a gateway with no mosquitto).
    serve_broker: bool = False
    #: Awaited before the mappers start: devices that come up beside the node (simulated ones),
    #: so that a mapper's first connection finds them listening.
    mappers_after: Callable[[], Awaitable[object]] | None = None
    #: Run the pods the cloud binds to this node (docs/pods.md); needs ``cloud``.
    pods: PodSettings | None = None

    def __post_init__(self) -> None:
        if self.pods is not None and self.cloud is None:
            raise InvalidGatewaySettings("a node's pods come from its cloud: --pods needs --cloud")
        if self.cloud is not None and self.manifests is not None:
            raise InvalidGatewaySettings(
                "a node joined to a cloud receives its devices from it: give either --cloud or --devices, "
                "not both"
            )


class InvalidGatewaySettings(PermanentError):
    """Settings a gateway cannot run with."""


#: The cloud link is restarted whatever happens: the node serves locally without it, and a link that
#: keeps failing is backed off to a minute between attempts rather than stopping the node.
LINK_POLICY = RestartPolicy(max_restarts=None, delays=(1.0, 5.0, 10.0, 30.0, 60.0))


class Gateway:
    """One edge node. ``await gateway.run()`` serves until cancelled; ``ready`` is set once serving."""

    def __init__(self, settings: GatewaySettings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.ready = asyncio.Event()
        self.service: TwinService | None = None
        self.mappers: MapperRunner | None = None
        self.dmi: DmiServer | None = None
        #: The cloud link, made a moment after the twin serves (``link_made`` is set then).
        self.link: CloudLink | None = None
        self.link_made = asyncio.Event()
        self.pods: PodManager | None = None
        self.pod_link: PodLink | None = None
        self._metrics: NodeMetrics | None = None

    @property
    def metrics(self) -> NodeMetrics:
        """The node's metrics (made on first use: the link and the metrics server share them)."""
        if self._metrics is None:
            from node_agent.metrics import NodeMetrics  # not before the twin serves (start-up time)

            self._metrics = NodeMetrics(self.settings.node)
        return self._metrics

    async def run(self) -> None:
        settings = self.settings
        lean_allocator()  # a gateway runs for months: large blocks it frees go back to the system
        async with contextlib.AsyncExitStack() as stack:
            if settings.serve_broker:
                # Opened before the twin connects to it and closed after the twin has flushed.
                from edgemqtt import embedded_broker

                await stack.enter_async_context(embedded_broker(settings.broker.host, settings.broker.port))
            await self._run_node()

    async def _run_node(self) -> None:
        settings = self.settings
        async with TwinStore(settings.data_dir, flush_interval=settings.flush_interval) as store:
            service = TwinService(settings.node, settings.broker, store, legacy_topics=settings.legacy_topics)
            self.service = service
            await service.start(settings.manifests)
            try:
                await self._run_pieces(service)
            finally:
                self.ready.clear()
                await service.stop()

    def _pieces(self, service: TwinService) -> list[Piece]:
        # The twin is the gateway: if it fails, nothing it hosts can go on, so it is not restarted.
        pieces: list[Piece] = [("the twin service", service.serve, RestartPolicy(restart=False))]
        settings = self.settings
        if settings.mappers is not None:
            # Imported here: a node without --mappers never loads the runner and its workers.
            from mappers.runner import MapperRunner

            self.mappers = MapperRunner(
                settings.node,
                settings.broker,
                protocols=list(settings.mappers) or None,
                registry=self.registry,
                settings=settings.runner,
            )
            pieces.append(("the mapper runner", self._run_mappers, RestartPolicy()))
        if settings.dmi_socket is not None:
            # Imports grpc (~20 MB of RSS) only here, when a DMI socket is asked for.
            from node_agent.dmi import dmi_server

            self.dmi = dmi_server(service, settings.dmi_socket, data_dir=settings.data_dir)
            pieces.append(("the DMI server", self.dmi.run, RestartPolicy()))
        if settings.pods is not None and settings.cloud is not None:
            self.pods, self.pod_link = self._pod_manager(settings.pods, settings.cloud.resend)
            pieces.append(("the pod manager", self.pods.run, RestartPolicy()))
        if settings.cloud is not None:
            pieces.append(("the cloud link", lambda: self._run_link(service), LINK_POLICY))
        if settings.metrics_port is not None:
            # A port it cannot have stops the node at once, with the reason.
            pieces.append(
                ("the metrics server", lambda: self._serve_metrics(service), RestartPolicy(restart=False))
            )
        return pieces

    async def _run_mappers(self) -> None:
        assert self.mappers is not None
        if self.settings.mappers_after is not None:
            await self.settings.mappers_after()
        await self.mappers.run()

    def _pod_manager(self, settings: PodSettings, resend: float) -> tuple[PodManager, PodLink]:
        # Imported here: a node that runs no pods never loads the pod runtime.
        from node_agent.pod_link import PodLink
        from node_agent.pods import PodManager

        manager = PodManager(self.settings.node, self.settings.data_dir, settings)
        link = PodLink(manager, resend=resend, metrics=self.metrics)
        manager.add_listener(link.status_listener)
        return manager, link

    async def _run_link(self, service: TwinService) -> None:
        if self.link is None:
            # Imported here, once the twin is serving: a node serves its devices before its link
            # loads. Loaded in a worker thread: the link's modules take ~30 ms (more when compiled
            # at start), which the twin would otherwise spend not answering its first requests.
            await asyncio.to_thread(importlib.import_module, "node_agent.cloud_link")
            from node_agent.cloud_link import CloudLink

            assert self.settings.cloud is not None
            self.link = CloudLink(
                service, self.settings.cloud, self.settings.data_dir, self.metrics, pods=self.pod_link
            )
            self.link_made.set()
        await self.link.run()

    async def _serve_metrics(self, service: TwinService) -> None:
        assert self.settings.metrics_port is not None
        self.metrics.serve(self.settings.metrics_port)
        while True:
            self.metrics.refresh(service)
            await asyncio.sleep(self.settings.metrics_refresh)

    async def _run_pieces(self, service: TwinService) -> None:
        pieces = self._pieces(service)  # outside the TaskGroup: a bad setting is one plain error
        try:
            async with asyncio.TaskGroup() as group:
                for name, piece, policy in pieces:
                    group.create_task(supervise(name, piece, policy), name=f"{name} of {self.settings.node}")
                await service.ready.wait()
                self.ready.set()
        except* PieceFailed as failed:
            raise failed.exceptions[0] from None
