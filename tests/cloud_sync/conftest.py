"""The cloud side for cloud-sync's tests: the embedded API server, mosquitto with the files cloud-sync
keeps, and cloud-sync itself running in the test's loop (``CloudStack``).

Everything is real and on real sockets: kubectl and the ``kubernetes`` client against the API
server, mosquitto (its password file and ACL written by cloud-sync, reloaded with SIGHUP), and
``NodePeer`` nodes. Blocking calls (kubectl) run in threads so that cloud-sync keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloud_sync import AccessFiles, BrokerReload, CloudSync, CloudSyncSettings, KubeApi
from edgemqtt import BrokerAddress
from tests.cloud_sync.faults import FaultProxy
from tests.cloud_sync.peer import NodePeer
from tests.fixtures.apiserver import ApiServerThread, Kubectl, make_kubectl
from tests.fixtures.brokers import Mosquitto, mosquitto_binary

FAST = (0.05, 0.1, 0.2)  # retry delays in tests: short, so that retries are seen soon

MODEL = """
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model, namespace: default}
spec:
  protocol: virtual
  properties:
    - {name: temperature, type: FLOAT, accessMode: ReadOnly}
    - {name: target, type: INT, accessMode: ReadWrite, minimum: "0", maximum: "100"}
    - {name: mode, type: STRING, accessMode: ReadWrite}
"""


def device_yaml(
    name: str,
    node: str,
    *,
    target: str | None = "20",
    report_cycle: int = 200,
    model: str = "thermo-model",
    extra_property: str = "",
) -> str:
    desired = f'\n      desired: {{value: "{target}"}}' if target is not None else ""
    return f"""
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {{name: {name}, namespace: default}}
spec:
  deviceModelRef: {{name: {model}}}
  nodeName: {node}
  protocol: {{protocolName: virtual}}
  properties:
    - name: temperature
      reportToCloud: true
      reportCycle: {report_cycle}
    - name: target
      reportToCloud: true
      reportCycle: {report_cycle}{desired}
    - name: mode
      reportToCloud: false{extra_property}
"""


@dataclass
class CloudStack:
    api_server: ApiServerThread
    kubectl: Kubectl
    mosquitto: Mosquitto
    data_dir: Path
    api: KubeApi
    make_settings: Callable[..., CloudSyncSettings]
    clouds: list[tuple[CloudSync, asyncio.Task[None]]] = field(default_factory=list)
    apis: list[KubeApi] = field(default_factory=list)

    @property
    def cloud(self) -> CloudSync:
        return self.clouds[0][0]

    @property
    def token(self) -> str:
        return AccessFiles(self.data_dir).token()

    @property
    def broker(self) -> BrokerAddress:
        return self.mosquitto.address

    async def start_cloud(
        self, api: KubeApi | None = None, *, reload: BrokerReload | None = None, **settings: Any
    ) -> CloudSync:
        async def reload_mosquitto() -> None:
            self.mosquitto.reload()

        cloud = CloudSync(self.make_settings(**settings), api or self.api, reload=reload or reload_mosquitto)
        task = asyncio.create_task(cloud.run(), name="cloud-sync")
        self.clouds.append((cloud, task))
        ready = asyncio.create_task(cloud.ready.wait())
        await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert cloud.ready.is_set(), "cloud-sync did not become ready within 30 s"
        return cloud

    async def stop_cloud(self, cloud: CloudSync) -> None:
        for running, task in self.clouds:
            if running is cloud:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop_all(self) -> None:
        for _, task in self.clouds:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for api in self.apis:
            await api.aclose()
        self.apis.clear()

    async def start_cloud_through(self, proxy: FaultProxy, **settings: Any) -> CloudSync:
        """cloud-sync talking to the API server through ``proxy``."""
        api = KubeApi.from_config(proxy.kubeconfig)
        self.apis.append(api)
        return await self.start_cloud(api, **settings)

    def peer(self, node: str, **options: Any) -> NodePeer:
        return NodePeer(self.broker, node, self.token, **options)

    async def kubectl_run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = await asyncio.to_thread(self.kubectl.run, *args, input=input, check=check)
        return result.stdout if check or result.returncode == 0 else result.stderr

    async def apply(self, manifest: str) -> None:
        await self.kubectl_run("apply", "-f", "-", input=manifest)

    async def wait(
        self, what: str, condition: str, timeout: float = 20.0, *, namespace: str = "default"
    ) -> None:
        """``kubectl wait`` (it watches the object) for ``--for=CONDITION``."""
        await self.kubectl_run("wait", what, "-n", namespace, f"--for={condition}", f"--timeout={timeout:g}s")

    async def stamped(self, *names: str) -> None:
        """Wait until cloud-sync has stamped the desired values' versions of these devices."""
        for name in names:
            await self.wait(
                f"device/{name}", r"jsonpath={.metadata.annotations.twin\.edgetwin\.io/desired-versions}"
            )

    async def device(self, name: str, namespace: str = "default") -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            await self.kubectl_run("get", "device", name, "-n", namespace, "-o", "json")
        )
        return result


class LogWaiter(logging.Handler):
    """Collects cloud-sync's log lines and wakes tests that wait for one (from any thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.loop = loop
        self.lines: list[str] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._changed.set)

    def count(self, pattern: str) -> int:
        return sum(1 for line in self.lines if re.search(pattern, line))

    async def wait(self, pattern: str, times: int = 1, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while self.count(pattern) < times:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def logs() -> AsyncIterator[LogWaiter]:
    waiter = LogWaiter(asyncio.get_running_loop())
    logger = logging.getLogger("cloud_sync")
    level = logger.level
    logger.addHandler(waiter)
    logger.setLevel(logging.DEBUG)
    try:
        yield waiter
    finally:
        logger.removeHandler(waiter)
        logger.setLevel(level)


@pytest.fixture
def cloud_files(tmp_path: Path) -> AccessFiles:
    files = AccessFiles(tmp_path / "cloud")
    files.write(["node-a", "node-b"])
    return files


@pytest.fixture
def cloud_mosquitto(tmp_path: Path, cloud_files: AccessFiles) -> Iterator[Mosquitto]:
    """mosquitto with the password file and ACL cloud-sync keeps (reloaded with SIGHUP)."""
    server = Mosquitto(
        mosquitto_binary(),
        tmp_path,
        settings=(
            "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {cloud_files.password_file}\nacl_file {cloud_files.acl_file}\n"
        ),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def stack(
    tmp_path: Path,
    apiserver_factory: Callable[..., ApiServerThread],
    cloud_files: AccessFiles,
    cloud_mosquitto: Mosquitto,
) -> AsyncIterator[CloudStack]:
    server = apiserver_factory()
    api = KubeApi.from_config(server.kubeconfig)

    def make_settings(**overrides: Any) -> CloudSyncSettings:
        options: dict[str, Any] = {
            "broker": cloud_mosquitto.address,
            "data_dir": cloud_files.data_dir,
            "admit": ("node-a", "node-b"),
            "grace": 30.0,
            "retry_delays": FAST,
            "default_report_cycle": 0.2,
            **overrides,
        }
        return CloudSyncSettings(**options)

    stack = CloudStack(
        server,
        make_kubectl(server, tmp_path / "kube-cache"),
        cloud_mosquitto,
        cloud_files.data_dir,
        api,
        make_settings,
    )
    try:
        yield stack
    finally:
        await stack.stop_all()
        await api.aclose()


@pytest.fixture
async def proxy(stack: CloudStack, tmp_path: Path) -> AsyncIterator[FaultProxy]:
    """A fault-injecting proxy in front of the stack's API server (``stack.start_cloud_through``)."""
    faults = FaultProxy(stack.api_server.data_dir, stack.api_server.url)
    await faults.start(tmp_path)
    try:
        yield faults
    finally:
        await stack.stop_all()
        await faults.stop()
