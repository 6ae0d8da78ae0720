"""Watches of large objects over real sockets: shared bytes, bounded buffers, slow clients cut off.

Memory is measured as the server process's peak RSS (``VmHWM``), never as time. A slow client is a
real TLS socket that stops reading, with a small receive buffer so the kernel does not absorb
what the server sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from kubernetes import client, watch

from api_server import WatchLimits
from tests.fixtures.apiserver import ApiServerProcess, ApiServerThread, Http, kube_api_client

MiB = 1024 * 1024
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def configmap(name: str, fill: str, size: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"blob": fill * size},
    }


def put(http: Http, name: str, fill: str, size: int) -> int:
    """Replace the ConfigMap's blob; its new resourceVersion."""
    status, _, body = http.request("PUT", f"{CONFIGMAPS}/{name}", configmap(name, fill, size))
    assert status == 200, body[:300]
    return int(json.loads(body)["metadata"]["resourceVersion"])


class RawWatch:
    """A watch on a TLS socket of its own, read only when the test says so."""

    def __init__(self, server: ApiServerThread, path: str, *, receive_buffer: int = 4096) -> None:
        url = urlsplit(server.url)
        host, port = url.hostname or "127.0.0.1", url.port or 443
        context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # small and fixed: the kernel may not soak up megabytes the client never reads
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        raw.settimeout(30)
        raw.connect((host, port))
        self.sock = context.wrap_socket(raw, server_hostname=host)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {server.server.token}\r\nAccept: application/json\r\n\r\n".encode()
        )
        self._raw = b""
        while b"\r\n\r\n" not in self._raw:
            self._raw += self.sock.recv(1024)
        head, self._raw = self._raw.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        self._body = b""
        self.ended = False  # the last chunk came: the response ended cleanly

    def _decode(self) -> None:
        while not self.ended:
            size_line, found, rest = self._raw.partition(b"\r\n")
            if not found:
                return
            size = int(size_line, 16)
            if size == 0:
                self.ended = True
                return
            if len(rest) < size + 2:
                return
            self._body += rest[:size]
            self._raw = rest[size + 2 :]

    def _events(self) -> list[dict[str, Any]]:
        lines = self._body.split(b"\n")
        self._body = lines[-1]
        return [json.loads(line) for line in lines[:-1]]

    def read(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events."""
        events: list[dict[str, Any]] = []
        while len(events) < count:
            self._raw += self.sock.recv(256 * 1024)
            self._decode()
            events += self._events()
        return events

    def read_to_end(self) -> list[dict[str, Any]]:
        """Every event until the response ends or the connection does."""
        events: list[dict[str, Any]] = []
        try:
            while not self.ended and (data := self.sock.recv(256 * 1024)):
                self._raw += data
                self._decode()
                events += self._events()
        except (ConnectionResetError, ssl.SSLError):
            pass
        return events

    def hung_up(self) -> bool:
        """Whether the server has dropped the connection, seen without reading from it."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        return bool(poller.poll(30_000))

    def close(self) -> None:
        self.sock.close()


def rv_of(event: dict[str, Any]) -> int:
    return int(event["object"]["metadata"]["resourceVersion"])


def warnings_about(caplog: pytest.LogCaptureFixture, what: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(f"closing the watch of {what}")
    ]


async def test_many_watchers_of_a_large_object_do_not_each_hold_a_copy(
    apiserver_process: Callable[..., ApiServerProcess],
) -> None:
    size, watchers, updates = 4 * MiB, 25, 3
    server = apiserver_process(history=4)
    http = Http.to(server)
    assert http.request("POST", CONFIGMAPS, configmap("big", "a", size))[0] == 201
    for index in range(6):  # the kept history is full: more writes do not grow it
        rv = put(http, "big", "bcdefg"[index], size)
    before = server.memory("VmHWM")

    context = ssl.create_default_context(cafile=str(server.data_dir / "ca.crt"))
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=0), headers=headers
    ) as session:
        url = f"{server.url}{CONFIGMAPS}?watch=true&resourceVersion={rv}"
        responses = [
            await session.get(url, timeout=aiohttp.ClientTimeout(total=None)) for _ in range(watchers)
        ]

        async def read_events(response: aiohttp.ClientResponse) -> int:
            seen = 0
            async for data in response.content.iter_any():
                seen += data.count(b"\n")
                if seen == updates:
                    break
            response.close()
            return seen

        readers = [asyncio.create_task(read_events(r)) for r in responses]
        for index in range(updates):
            await asyncio.to_thread(put, http, "big", "hijk"[index], size)
        assert await asyncio.wait_for(asyncio.gather(*readers), 120) == [updates] * watchers

    grown = server.memory("VmHWM") - before
    # A copy per watcher (what the server did) is more than twice the object per watcher: about
    # 220 MiB here. Shared bytes leave a slice and socket buffers per watcher: 7 to 17 MiB.
    assert grown < watchers * size / 3, f"peak RSS grew by {grown / MiB:.0f} MiB for {watchers} watchers"


def test_a_watcher_that_stops_reading_is_cut_off_once_and_the_others_get_every_event(
    apiserver_factory: Callable[..., ApiServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_server.watch")
    server = apiserver_factory(watch_limits=WatchLimits(max_bytes=1 * MiB))
    http = Http.to(server)
    size, updates = 256 * 1024, 40
    assert http.request("POST", CONFIGMAPS, configmap("slow", "0", size))[0] == 201
    rv = put(http, "slow", "1", size)
    path = f"{CONFIGMAPS}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dslow"
    slow = RawWatch(server, path)

    seen: list[int] = []
    reader_done = threading.Event()

    def read_all() -> None:
        reader = RawWatch(server, path, receive_buffer=4 * MiB)
        seen.extend(rv_of(e) for e in reader.read(updates))
        reader.close()
        reader_done.set()

    thread = threading.Thread(target=read_all, daemon=True)
    thread.start()
    written = [put(http, "slow", "23456789"[i % 8], size) for i in range(updates)]
    assert reader_done.wait(60)
    assert seen == written  # the reading watcher missed nothing

    assert len(warnings_about(caplog, "configmaps")) == 1
    got = [rv_of(e) for e in slow.read_to_end()]
    assert slow.ended, "a cut-off watch ends with the last chunk"
    slow.close()
    assert got == written[: len(got)]
    assert len(got) < updates
    # it watches again from where it stopped and gets the rest
    since = got[-1] if got else rv
    resumed = http.lines(path.replace(f"resourceVersion={rv}", f"resourceVersion={since}"), 3)
    assert [rv_of(e) for e in resumed] == written[len(got) : len(got) + 3]
    assert len(warnings_about(caplog, "configmaps")) == 1


def test_a_cut_off_watcher_that_takes_nothing_more_is_disconnected(
    apiserver_factory: Callable[..., ApiServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_server.watch")
    server = apiserver_factory(watch_limits=WatchLimits(max_bytes=1 * MiB, drain_timeout=0.2))
    http = Http.to(server)
    size = 512 * 1024
    assert http.request("POST", CONFIGMAPS, configmap("stuck", "0", size))[0] == 201
    rv = put(http, "stuck", "1", size)
    stuck = RawWatch(server, f"{CONFIGMAPS}?watch=true&resourceVersion={rv}")
    index = 0
    while not warnings_about(caplog, "configmaps"):
        put(http, "stuck", "23456789"[index % 8], size)
        index += 1
        assert index < 200, "the watch was never cut off"
    assert stuck.hung_up()
    stuck.close()
    assert len(warnings_about(caplog, "configmaps")) == 1


def test_the_kubernetes_client_watches_again_after_a_cut_off_and_misses_nothing(
    apiserver_factory: Callable[..., ApiServerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api_server.watch")
    server = apiserver_factory(watch_limits=WatchLimits(max_bytes=1 * MiB))
    http = Http.to(server)
    core = client.CoreV1Api(kube_api_client(server))
    size = 512 * 1024
    assert http.request("POST", CONFIGMAPS, configmap("paused", "0", size))[0] == 201
    rv = put(http, "paused", "1", size)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=str(rv),
        field_selector="metadata.name=paused",
    )
    written = [put(http, "paused", "2", size)]
    first = next(stream)  # the request is made and the first event read; then the client pauses
    index = 0
    while not warnings_about(caplog, "configmaps"):
        written.append(put(http, "paused", "3456789"[index % 7], size))
        index += 1
        assert index < 200, "the watch was never cut off"
    written += [put(http, "paused", fill, size) for fill in "xyz"]
    got = [int(first["object"].metadata.resource_version)]
    for event in stream:
        got.append(int(event["object"].metadata.resource_version))
        if got[-1] == written[-1]:
            break
    assert got == written
