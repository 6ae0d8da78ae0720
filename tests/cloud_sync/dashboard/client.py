"""cloud-sync with its dashboard, and its HTTP API as a script or the page uses it: aiohttp on real
sockets, and a Server-Sent Events reader that keeps the state the stream describes, as the page does,
for tests to wait on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from cloud_sync import CloudSync
from cloud_sync.dashboard import DashboardSettings
from tests.cloud_sync.conftest import CloudStack
from tests.cloud_sync.peer import NodePeer
from twin.link import DeviceChange

TIMEOUT = 20.0  # a guard against hanging, never an assertion about speed
TOKEN = "dashboard-test-token"


async def start_with_dashboard(stack: CloudStack, port: int = 0, **settings: Any) -> CloudSync:
    """cloud-sync with a dashboard on ``port`` (0: a free one), pushing changes every 50 ms."""
    options: dict[str, Any] = {"token": TOKEN, "port": port, "interval": 0.05, **settings}
    return await stack.start_cloud(dashboard=DashboardSettings(**options))


async def desired_reaches(node: NodePeer, device_id: str, prop: str, text: str) -> DeviceChange:
    """The device change that brings ``prop``'s desired value ``text`` to the node (earlier ones skipped:
    the node may have been sent the device before, when its versions were stamped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            change = await node.change_of(device_id)
            if change.assignment is not None and change.assignment.desired[prop].value == text:
                return change


def base_url(cloud: CloudSync) -> str:
    assert cloud.dashboard is not None and cloud.dashboard.port is not None
    return f"http://127.0.0.1:{cloud.dashboard.port}"


@dataclass
class Picture:
    """What a page knows: the last snapshot with every change since applied."""

    devices: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    snapshots: int = 0
    changes: int = 0

    def apply(self, event: str, data: dict[str, Any]) -> None:
        if event == "snapshot":
            self.snapshots += 1
            self.devices = {view["id"]: view for view in data["devices"]}
            self.nodes = {view["name"]: view for view in data["nodes"]}
            self.events = {view["id"]: view for view in data["events"]}
            return
        self.changes += 1
        for section, known in (("devices", self.devices), ("nodes", self.nodes), ("events", self.events)):
            for key, view in data.get(section, {}).items():
                if view is None:
                    known.pop(key, None)
                else:
                    known[key] = view

    def prop(self, device_id: str, name: str) -> dict[str, Any]:
        return next(p for p in self.devices[device_id]["properties"] if p["name"] == name)


class Stream:
    """An open ``/api/stream``: its events, parsed, applied to ``picture``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.picture = Picture()
        self.frames: list[str] = []  # event names in order
        self.retry: int | None = None

    async def next(self) -> tuple[str, dict[str, Any]]:
        event, data = "message", []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    parsed = orjson.loads("\n".join(data))
                    self.frames.append(event)
                    self.picture.apply(event, parsed)
                    return event, parsed
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "retry":
                self.retry = int(value)

    async def until(self, condition: Callable[[Picture], bool], timeout: float = TIMEOUT) -> Picture:
        async with asyncio.timeout(timeout):
            while not _holds(condition, self.picture):
                await self.next()
        return self.picture

    async def ended(self, timeout: float = TIMEOUT) -> None:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.next()
                except (EOFError, aiohttp.ClientPayloadError):
                    return


def _holds(condition: Callable[[Picture], bool], picture: Picture) -> bool:
    try:
        return condition(picture)
    except (KeyError, StopIteration):
        return False


class DashboardClient:
    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session = session
        self.url = url
        self.token = token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **options: Any) -> aiohttp.ClientResponse:
        options.setdefault("headers", self.auth)
        async with self.session.get(self.url + path, allow_redirects=False, **options) as response:
            await response.read()
            return response

    async def state(self) -> dict[str, Any]:
        async with self.session.get(self.url + "/api/state", headers=self.auth) as response:
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def set_desired(
        self,
        device: str,
        prop: str,
        value: str = "",
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """POST a desired value (``raw``: this body instead of ``{"value": value}``); status and answer."""
        namespace, name = device.split("/")
        url = f"{self.url}/api/devices/{namespace}/{name}/properties/{prop}/desired"
        body = raw if raw is not None else orjson.dumps({"value": value})
        headers = {**self.auth, "Content-Type": content_type}
        async with self.session.post(url, data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    @asynccontextmanager
    async def stream(self) -> AsyncIterator[Stream]:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.url + "/api/stream", headers=self.auth, timeout=timeout) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            stream = Stream(response)
            await stream.next()  # the snapshot
            yield stream


@asynccontextmanager
async def dashboard_client(url: str, token: str) -> AsyncIterator[DashboardClient]:
    # unsafe: the jar takes cookies from an IP address (127.0.0.1), as a browser does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield DashboardClient(session, url, token)
