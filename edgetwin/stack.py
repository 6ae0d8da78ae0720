"""The parts ``edgetwin up`` is made of: child processes, sample devices, waiting for first values.

A ``Child`` is one ``edgetwin`` command in its own process, its output in a log file, ready when a
given line appears, stopped with SIGTERM (then SIGKILL). ``SampleDevices`` are the Device and
DeviceModel manifests ``up`` applies through the Kubernetes API, retargeted to the node and the
simulators' ports. ``first_values`` watches Devices until each has a reported value, ``node_ready``
the node's Node until it is Ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cloud_sync import KubeApi
from cloud_sync.errors import ApiNotFound
from twin.errors import InvalidManifest, TemporaryError
from twin.manifests import parse_manifest

__all__ = ["Child", "SampleDevices", "first_values", "node_ready"]

GROUP, VERSION = "devices.kubeedge.io", "v1beta1"


class Child:
    """A command in its own process (``python -m edgetwin ARGS`` by default), its output tee'd to ``log``."""

    def __init__(self, name: str, args: list[str], log: Path, *, program: list[str] | None = None) -> None:
        self.name = name
        self.argv = [*(program or [sys.executable, "-m", "edgetwin"]), *args]
        self.log = log
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lines: deque[str] = deque(maxlen=40)
        self._ready_line = ""
        self._ready = asyncio.Event()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def start(self, ready_line: str, timeout: float = 60.0) -> None:
        """Start and wait for a line containing ``ready_line``; ``TemporaryError`` with the log's tail."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._ready_line = ready_line
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Its own process group: the terminal's Ctrl-C reaches only `up`, which stops it in order.
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(), name=f"log of {self.name}")
        waiting = asyncio.create_task(self._ready.wait())
        exiting = asyncio.create_task(self._proc.wait())
        done, _ = await asyncio.wait({waiting, exiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        exiting.cancel()
        if not self._ready.is_set():
            await self.stop()
            why = "did not come up" if not done else f"exited with {self.returncode}"
            raise TemporaryError(f"{self.name} {why}; the end of {self.log}:\n{self.tail()}")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self.log.open("a", encoding="utf-8") as out:
            async for raw in self._proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                out.write(line + "\n")
                out.flush()
                self._lines.append(line)
                if self._ready_line in line:
                    self._ready.set()

    def tail(self) -> str:
        return "\n".join(f"  | {line}" for line in self._lines)

    async def wait(self) -> int:
        assert self._proc is not None
        return await self._proc.wait()

    async def stop(self, grace: float = 15.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(15)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


@dataclass
class SampleDevices:
    """Device and DeviceModel objects to apply, retargeted to the node and the simulators' ports."""

    objects: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, paths: Iterable[Path], *, node: str, modbus_port: int, opcua_port: int) -> SampleDevices:
        result = cls()
        files = [f for p in paths for f in (sorted(p.glob("*.y*ml")) if p.is_dir() else [p])]
        for file in files:
            try:
                docs = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d]
            except (OSError, yaml.YAMLError) as exc:
                raise InvalidManifest(f"{file}: cannot be read: {exc}") from exc
            for doc in docs:
                if parse_manifest(doc, source=str(file)) is None:
                    continue
                if doc["kind"] == "Device":
                    _retarget(doc, node, modbus_port, opcua_port)
                result.objects.append(doc)
        return result

    @property
    def devices(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects if o["kind"] == "Device"]

    def protocol(self, name: str) -> str:
        device = next(o for o in self.objects if o["kind"] == "Device" and o["metadata"]["name"] == name)
        return str(((device.get("spec") or {}).get("protocol") or {}).get("protocolName") or "")

    def needs_hardware(self, name: str) -> str:
        """The hardware a sample points at that no simulator stands in for (a serial port), or ``""``."""
        device = next(o for o in self.objects if o["kind"] == "Device" and o["metadata"]["name"] == name)
        config = ((device.get("spec") or {}).get("protocol") or {}).get("configData") or {}
        return str(config.get("serialPort") or "")

    async def apply_missing(self, api: KubeApi) -> int:
        """Create the Devices and DeviceModels the cluster does not have yet; how many Devices."""
        created = 0
        for obj in sorted(self.objects, key=lambda o: o["kind"] != "DeviceModel"):  # models first
            plural = "devices" if obj["kind"] == "Device" else "devicemodels"
            namespace = obj["metadata"].get("namespace", "default")
            collection = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
            try:
                await api.get(f"{collection}/{obj['metadata']['name']}")
            except ApiNotFound:
                await api.call("POST", collection, body=obj)
                created += obj["kind"] == "Device"
        return created


def _retarget(device: dict[str, Any], node: str, modbus_port: int, opcua_port: int) -> None:
    spec = device.setdefault("spec", {})
    spec["nodeName"] = node
    config = (spec.get("protocol") or {}).get("configData") or {}
    if config.get("port") == 5020:
        config["port"] = modbus_port
    url = config.get("url")
    if isinstance(url, str) and ":4840/" in url:
        config["url"] = url.replace(":4840/", f":{opcua_port}/")


async def first_values(
    api: KubeApi, names: list[str], *, timeout: float, on_value: Callable[[str], None]
) -> set[str]:
    """Devices of ``names`` that show a reported value within ``timeout``, told as they come."""
    path = f"/apis/{GROUP}/{VERSION}/devices"
    seen: set[str] = set()

    async def all_seen() -> bool:
        items, _ = await api.list_all(path)
        for obj in items:
            name = obj["metadata"]["name"]
            twins = (obj.get("status") or {}).get("twins") or []
            reported = any((t.get("reported") or {}).get("value") for t in twins)
            if name in names and name not in seen and reported:
                seen.add(name)
                on_value(name)
        return set(names) <= seen

    await _poll(all_seen, timeout)
    return seen


async def node_ready(api: KubeApi, node: str, *, timeout: float) -> bool:
    """Whether the Node ``node`` shows Ready within ``timeout``.

    Device values and the Node come by different messages (report, heartbeat): the first can be in
    the API before the second, and ``kubectl get nodes`` right after "all live" should show the node.
    """
    path = f"/api/v1/nodes/{node}"

    async def ready() -> bool:
        with contextlib.suppress(ApiNotFound):
            conditions = ((await api.get(path)).get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return False

    return await _poll(ready, timeout)


async def _poll(done: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Whether ``done`` says so within ``timeout``, asked every tenth of a second.

    Requests a tenth of a second apart during start-up (a few dozen small ones): simpler than a
    watch for a wait of seconds that ends at the first yes.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not await done():
                await asyncio.sleep(0.1)
            return True
    return False
