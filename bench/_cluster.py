"""The processes of a cluster for the cloud benchmarks: API server, brokers, cloud-sync, node agents.

Why a module of its own: ``bench/sync.py`` measures the pieces together, each in its own process
as a deployment runs them, and needs them started, reached and removed the same way for each of
its measurements. Every process binds 127.0.0.1; everything is removed on exit.

* ``edgetwin apiserver`` on a free port (its data, kubeconfig, CA and token in the work folder);
* mosquitto as the cloud broker with the password file and ACL ``edgetwin cloud`` keeps, and a
  plain mosquitto as the nodes' local broker;
* ``edgetwin cloud`` with ``--metrics-port`` (its Prometheus counters are read by the benchmark);
* ``edgetwin node`` processes joined to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _common import LOOPBACK, free_port, mosquitto_binary, stop_process, wait_listening

GROUP_VERSION = "devices.kubeedge.io/v1beta1"
DEVICES = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices"
MODELS = "/apis/devices.kubeedge.io/v1beta1/namespaces/default/devicemodels"
MODEL_NAME = "bench-thermostat"
EDGETWIN = [sys.executable, "-m", "edgetwin", "--log-level", "WARNING"]

MODEL = {
    "apiVersion": GROUP_VERSION,
    "kind": "DeviceModel",
    "metadata": {"name": MODEL_NAME, "namespace": "default"},
    "spec": {
        "protocol": "modbus",
        "properties": [
            {"name": "temperature", "type": "FLOAT", "accessMode": "ReadOnly"},
            {"name": "setpoint", "type": "INT", "accessMode": "ReadWrite", "minimum": "5", "maximum": "90"},
        ],
    },
}


def device(name: str, node: str, *, report_ms: int = 1000, desired: str | None = None) -> dict[str, Any]:
    """A Modbus thermostat Device like ``crds/samples/modbus-tcp.yaml`` (its mapper is not run)."""

    def visitor(offset: int) -> dict[str, Any]:
        config = {"register": "HoldingRegister", "offset": offset, "limit": 1, "dataType": "int"}
        return {"protocolName": "modbus", "configData": config}

    setpoint: dict[str, Any] = {
        "name": "setpoint",
        "collectCycle": 1000,
        "reportCycle": report_ms,
        "reportToCloud": True,
        "visitors": visitor(1),
    }
    if desired is not None:
        setpoint["desired"] = {"value": desired}
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Device",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "sync"}},
        "spec": {
            "deviceModelRef": {"name": MODEL_NAME},
            "nodeName": node,
            "protocol": {
                "protocolName": "modbus",
                "configData": {"communicateMode": "TCP", "ip": LOOPBACK, "port": 5020, "slaveID": 1},
            },
            "properties": [
                {
                    "name": "temperature",
                    "collectCycle": 1000,
                    "reportCycle": report_ms,
                    "reportToCloud": True,
                    "visitors": visitor(0),
                },
                setpoint,
            ],
        },
    }


def memory(pid: int, field_name: str = "VmRSS") -> int:
    """A memory figure of a process in bytes (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field_name)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _spawn(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=env)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{text!r} never appeared in {log}:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class BenchCluster:
    workdir: Path
    admit: Sequence[str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_url: str = ""
    api_token: str = ""
    cloud_port: int = 0
    local_port: int = 0
    metrics_port: int = 0
    cloud: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def api_dir(self) -> Path:
        return self.workdir / "apiserver"

    @property
    def cloud_dir(self) -> Path:
        return self.workdir / "cloud"

    # -- starting ------------------------------------------------------------------------------------

    def start(self, *, cloud_cpus: str | None = None) -> None:
        log = self.workdir / "apiserver.log"
        api = _spawn([*EDGETWIN, "apiserver", "--data-dir", str(self.api_dir), "--port", "0"], log)
        self.processes.append(api)
        line = _wait_for_line(log, " on https://", api)
        self.api_url = line.split(" on ", 1)[1].split()[0]
        self.api_token = (self.api_dir / "token").read_text().strip()
        made = subprocess.run(
            [*EDGETWIN, "cloud", "token", "--data-dir", str(self.cloud_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = made.stdout.strip()
        self.cloud_port = self._mosquitto(
            "cloud",
            "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {self.cloud_dir / 'broker' / 'passwd'}\n"
            f"acl_file {self.cloud_dir / 'broker' / 'acl'}\n",
        )
        self.local_port = self._mosquitto("local", "allow_anonymous true\n")
        self.start_cloud(cpus=cloud_cpus)

    def _mosquitto(self, name: str, settings: str) -> int:
        port = free_port()
        config = self.workdir / f"{name}-mosquitto.conf"
        config.write_text(
            f"user {getpass.getuser()}\nlistener {port} {LOOPBACK}\n{settings}"
            "persistence false\nset_tcp_nodelay true\nmax_queued_messages 1000000\nlog_type error\n"
        )
        proc = _spawn([str(mosquitto_binary()), "-c", str(config)], self.workdir / f"{name}-mosquitto.log")
        self.processes.append(proc)
        wait_listening(port, proc, f"{name} mosquitto")
        (self.workdir / f"{name}-mosquitto.pid").write_text(f"{proc.pid}\n")
        return port

    def start_cloud(self, *, cpus: str | None = None) -> None:
        self.metrics_port = free_port()
        command = [
            *EDGETWIN,
            "cloud",
            "--kubeconfig", str(self.api_dir / "kubeconfig"),
            "--broker", f"mqtt://{LOOPBACK}:{self.cloud_port}",
            "--data-dir", str(self.cloud_dir),
            "--broker-reload-command", f"kill -HUP $(cat {self.workdir / 'cloud-mosquitto.pid'})",
            "--metrics-port", str(self.metrics_port),
            "--admit", *self.admit,
        ]  # fmt: skip
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        log = self.workdir / "cloud.log"
        self.cloud = _spawn(command, log)
        self.processes.append(self.cloud)
        _wait_for_line(log, "edgetwin cloud is up", self.cloud)

    def node_command(self, name: str, data_dir: Path, *, cloud: bool = True) -> list[str]:
        command = [*EDGETWIN, "node", name, "--broker", f"mqtt://{LOOPBACK}:{self.local_port}"]
        command += ["--data-dir", str(data_dir)]
        if cloud:
            command += ["--cloud", f"mqtt://{LOOPBACK}:{self.cloud_port}", "--token", self.token]
        return command

    @contextlib.contextmanager
    def node(self, name: str, data_dir: Path, *, cloud: bool = True) -> Iterator[subprocess.Popen[bytes]]:
        log = self.workdir / f"node-{name}.log"
        proc = _spawn(self.node_command(name, data_dir, cloud=cloud), log)
        try:
            _wait_for_line(log, f"node {name}: twin service for", proc)
            yield proc
        finally:
            stop_process(proc)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            stop_process(proc)

    # -- the API ---------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[aiohttp.ClientSession]:
        context = ssl.create_default_context(cafile=str(self.api_dir / "ca.crt"))
        connector = aiohttp.TCPConnector(ssl=context, limit=64)
        headers = {"Authorization": f"Bearer {self.api_token}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(
            self.api_url, connector=connector, headers=headers, timeout=aiohttp.ClientTimeout(total=None)
        ) as session:
            yield session

    async def create(self, session: aiohttp.ClientSession, objects: Sequence[dict[str, Any]]) -> None:
        """Create (or leave as they are) these objects, 16 requests at a time."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for obj in objects:
            queue.put_nowait(obj)

        async def worker() -> None:
            while not queue.empty():
                obj = queue.get_nowait()
                path = MODELS if obj["kind"] == "DeviceModel" else DEVICES
                async with session.post(path, data=json.dumps(obj)) as response:
                    if response.status >= 300 and response.status != 409:
                        raise RuntimeError(f"creating {obj['metadata']['name']}: {await response.text()}")

        await asyncio.gather(*(worker() for _ in range(16)))

    def metric(self, name: str, labels: str = "") -> float:
        """One counter of ``edgetwin cloud``'s metrics (0 if it has not counted anything yet)."""
        url = f"http://{LOOPBACK}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        wanted = f"{name}{{{labels}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(wanted + " "):
                return float(line.split()[-1])
        return 0.0


@contextlib.contextmanager
def bench_cluster(
    workdir: Path, admit: Sequence[str], *, cloud_cpus: str | None = None
) -> Iterator[BenchCluster]:
    cluster = BenchCluster(workdir, admit)
    try:
        cluster.start(cloud_cpus=cloud_cpus)
        yield cluster
    finally:
        cluster.stop()


def environment(*, bytecode: bool) -> dict[str, str]:
    """This process's environment, with Python writing and reading ``.pyc`` files or not."""
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env
