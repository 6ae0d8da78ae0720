"""The dashboard as a piece of cloud-sync: its socket, its watches of Events, its push loop.

``CloudSync`` makes a ``Dashboard`` when its settings have one, binds it before anything else
(``start``: a port in use fails cloud-sync's start with ``DashboardUnavailable`` naming the
address, not an hour of retries), runs it under its TaskGroup (``run``: the Events watches and the
hub) and stops it last (``stop``: every open page's stream ends, and the pages reconnect to the
next cloud-sync on the same port, the token kept in its data directory).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloud_sync.dashboard.board import Board, Sources
from cloud_sync.dashboard.hub import Hub
from cloud_sync.dashboard.writes import DesiredWriter
from cloud_sync.resources import EVENTS
from cloud_sync.watches import Watch
from twin.errors import TemporaryError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["DEFAULT_PORT", "Dashboard", "DashboardSettings", "DashboardUnavailable"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8090


class DashboardUnavailable(TemporaryError):
    """The dashboard's address cannot be listened on (a port in use, an address not of this host)."""


@dataclass(frozen=True)
class DashboardSettings:
    #: What the page and its API need (``AccessFiles.dashboard_token``).
    token: str
    host: str = "127.0.0.1"
    #: 0: any free port (tests); ``Dashboard.port`` tells which.
    port: int = DEFAULT_PORT
    #: Seconds of changes gathered into one push to the pages.
    interval: float = 0.1
    #: Seconds between keep-alive comments on an idle stream.
    keepalive: float = 15.0
    #: How many recent Events the page gets.
    events: int = 100
    #: The Events watches' request length (the server's ``timeoutSeconds``).
    watch_timeout: int = 300


class Dashboard:
    def __init__(self, sources: Sources, settings: DashboardSettings) -> None:
        self.settings = settings
        self.board = Board(sources, events=settings.events)
        self.hub = Hub(self.board, interval=settings.interval)
        self.writer = DesiredWriter(sources.api, sources.inventory, sources.metrics)
        self.events_watches = [
            Watch(
                sources.api,
                EVENTS.path(),
                self.board.on_event,
                name=f"{kind} events",
                query={"fieldSelector": f"involvedObject.kind={kind}"},
                timeout=settings.watch_timeout,
            )
            for kind in ("Device", "Node")
        ]
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The page's address with its token (what a user opens)."""
        host = self.settings.host
        shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        shown = f"[{shown}]" if ":" in shown else shown
        return f"http://{shown}:{self.port}/?token={self.settings.token}"

    async def start(self) -> None:
        """Listen on the dashboard's address; ``DashboardUnavailable`` if it cannot."""
        settings = self.settings
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        try:
            sock = socket.create_server((settings.host, settings.port), family=family, reuse_port=False)
        except OSError as exc:
            raise DashboardUnavailable(
                f"the dashboard cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from exc
        try:
            await self._serve(sock)
        except BaseException:
            sock.close()
            raise
        log.info("dashboard on http://%s:%d/", settings.host, self.port)

    async def _serve(self, sock: socket.socket) -> None:
        # aiohttp only once a dashboard is served: ``import cloud_sync`` stays light (``cloud token``).
        from aiohttp import web

        from cloud_sync.dashboard.server import make_app

        settings = self.settings
        self.port = int(sock.getsockname()[1])
        app = make_app(
            self.board,
            self.hub,
            self.writer,
            token=settings.token,
            port=self.port,
            keepalive=settings.keepalive,
        )
        # The hub ends the streams on stop; no open page holds the shutdown for long.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        await web.SockSite(runner, sock).start()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.hub.run(), name="dashboard push")
            for watch in self.events_watches:
                group.create_task(watch.run(), name=f"dashboard {watch.name} watch")

    async def stop(self) -> None:
        self.hub.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
