"""The gateway host: one edge node's store, twin service and in-process mappers under one TaskGroup.

``edgetwin node`` and ``edgetwin up`` both run a ``Gateway``; this is the one place where a node's
pieces are started, supervised (``node_agent.supervision``) and stopped. The twin store is opened
first and closed last, so whatever way the gateway stops (Ctrl-C, SIGTERM, a piece that failed
for good) the reported values it holds are flushed to disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgemqtt.client import BrokerAddress
from mappers import MapperRunner, Registry, RunnerSettings
from node_agent.dmi import dmi_server
from node_agent.supervision import PieceFailed, RestartPolicy, supervise
from twin.manifests import Manifests
from twin.service import TwinService
from twin.store import TwinStore

if TYPE_CHECKING:
    from node_agent.dmi.server import DmiServer

__all__ = ["Gateway", "GatewaySettings", "Piece"]

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


class Gateway:
    """One edge node. ``await gateway.run()`` serves until cancelled; ``ready`` is set once serving."""

    def __init__(self, settings: GatewaySettings, *, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.ready = asyncio.Event()
        self.service: TwinService | None = None
        self.mappers: MapperRunner | None = None
        self.dmi: DmiServer | None = None

    async def run(self) -> None:
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
            self.mappers = MapperRunner(
                settings.node,
                settings.broker,
                protocols=list(settings.mappers) or None,
                registry=self.registry,
                settings=settings.runner,
            )
            pieces.append(("the mapper runner", self.mappers.run, RestartPolicy()))
        if settings.dmi_socket is not None:
            # Imports grpc (~20 MB of RSS) only here, when a DMI socket is asked for.
            self.dmi = dmi_server(service, settings.dmi_socket, data_dir=settings.data_dir)
            pieces.append(("the DMI server", self.dmi.run, RestartPolicy()))
        return pieces

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
