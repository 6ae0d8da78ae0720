"""A fault-injecting HTTPS proxy between cloud-sync and the API server, for the retry tests.

Real sockets both ways: it serves plain HTTP on loopback (the ``kubernetes`` client sends its bearer
token there too), forwards each request to the API server over HTTPS and streams the answer back
(watches included), except where a ``Fault`` says to answer with an error ``Status`` instead
(409, 429, 500...), the given number of times, or where a ``Hold`` keeps requests waiting until
the test releases them (an API that is slow to answer). Every request is recorded with the status
it got, which is also how tests count status writes.

``stop`` aborts every upstream TLS connection and waits until each is closed: a TLS connection
closed politely waits for the API server's close_notify, and the test's loop may be closed before
that, which would leave its socket open (a ResourceWarning, an error under ``filterwarnings``).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}


@dataclass
class Fault:
    method: str
    path: str  # a regular expression searched in the path
    status: int
    times: int = 1
    reason: str = "InternalError"


@dataclass
class Hold:
    """Requests matching ``method`` and ``path`` (searched) wait at the proxy until ``release``."""

    method: str
    path: str
    #: Requests that have arrived and waited (or wait) here.
    held: int = 0
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str) -> bool:
        return (
            not self._released.is_set() and method == self.method and re.search(self.path, path) is not None
        )

    async def wait(self) -> None:
        self.held += 1
        self._arrived.set()
        await self._released.wait()

    async def wait_held(self, count: int) -> None:
        """Until ``count`` requests are held."""
        while self.held < count:
            self._arrived.clear()
            await self._arrived.wait()

    def release(self) -> None:
        self._released.set()


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    status: int
    faulted: bool


@dataclass
class FaultProxy:
    api_dir: Path  # the API server's data directory (certificates, kubeconfig)
    upstream: str  # https://127.0.0.1:PORT
    faults: list[Fault] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    on_fault: Callable[[Fault], None] | None = None
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None
    _open: set[aiohttp.ClientResponse] = field(default_factory=set)
    # Every upstream connection not yet closed: its transport and the future its closing resolves.
    _connections: dict[object, tuple[asyncio.BaseTransport, asyncio.Future[None]]] = field(
        default_factory=dict
    )

    async def start(self, workdir: Path) -> None:
        self._client_tls = ssl.create_default_context(cafile=str(self.api_dir / "ca.crt"))
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        config = yaml.safe_load((self.api_dir / "kubeconfig").read_text())
        cluster = config["clusters"][0]["cluster"]
        cluster["server"] = f"http://127.0.0.1:{self.port}"
        cluster.pop("certificate-authority-data", None)
        self.kubeconfig = workdir / "proxy-kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))

    async def stop(self) -> None:
        for hold in self.holds:
            hold.release()
        # The upstream side first: it ends the handlers still streaming watches, then the server.
        # Aborted, not closed: no close_notify exchange that the loop's end could cut short.
        for transport, _ in list(self._connections.values()):
            transport.abort()
        for upstream in list(self._open):
            upstream.close()
        if self._session is not None:
            await self._session.close()
        async with asyncio.timeout(30):  # a guard against hanging: an aborted transport closes at once
            await asyncio.gather(
                *(closed for _, closed in self._connections.values()), return_exceptions=True
            )
        if self._runner is not None:
            await self._runner.cleanup()

    def _track(self, upstream: aiohttp.ClientResponse) -> None:
        """Keep the connection ``upstream`` came on until it is closed (``stop`` aborts it)."""
        connection = upstream.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is None or protocol.transport is None or protocol in self._connections:
            return
        closed = protocol.closed
        if closed is None:  # already lost
            return

        def forget(done: asyncio.Future[None]) -> None:
            self._connections.pop(protocol, None)
            if not done.cancelled():
                done.exception()  # a connection that ended with an error is still just closed

        self._connections[protocol] = (protocol.transport, closed)
        closed.add_done_callback(forget)

    def count(self, method: str, path: str, *, ok: bool = True) -> int:
        """Requests with ``method`` whose path matches ``path`` (that succeeded, with ``ok``)."""
        return sum(
            1
            for r in self.records
            if r.method == method and re.search(path, r.path) and (not ok or 200 <= r.status < 300)
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for fault in self.faults:
            if fault.times > 0 and fault.method == request.method and re.search(fault.path, path):
                fault.times -= 1
                await request.read()
                self.records.append(Record(request.method, path, fault.status, True))
                if self.on_fault is not None:
                    self.on_fault(fault)
                return web.json_response(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": fault.reason,
                        "message": f"injected {fault.status}",
                        "code": fault.status,
                    },
                    status=fault.status,
                )
        for hold in self.holds:
            if hold.matches(request.method, path):
                await hold.wait()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            ssl=self._client_tls,
        ) as upstream:
            self.records.append(Record(request.method, path, upstream.status, False))
            self._track(upstream)
            self._open.add(upstream)
            response = web.StreamResponse(status=upstream.status)
            for key in ("Content-Type", "Warning"):
                if key in upstream.headers:
                    response.headers[key] = upstream.headers[key]
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (aiohttp.ClientError, ConnectionResetError):
                pass  # one side went away mid-stream (a watch cut): the other sees the end
            finally:
                self._open.discard(upstream)
            return response
