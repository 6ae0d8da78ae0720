"""Pods through the whole stack: ``kubectl apply`` → ``Running`` in the API, and the node agent's memory.

Why: what a user waits for is not the runtime's start but the round trip through every piece: the
API server stores the pod, cloud-sync sees it and sends it over the cloud link, the node agent
stores and starts it, reports its status, cloud-sync writes the status, and the API server shows
it. ``pods.py`` measures the runtime alone; this measures the trip, per runtime.

What runs, each in its own process as a user runs them: ``edgetwin cloud`` (the embedded API server,
the embedded cloud broker and cloud-sync), ``edgetwin broker`` (the gateway's broker) and
``edgetwin node bench-node --cloud … --pods RUNTIME``. The script watches the pods through the API
(one watch, in a thread) and notes when each is first reported ``Running``.

* **kubectl apply**: a pod applied with ``kubectl apply -f -`` (one process per pod, as a user does);
  from the moment kubectl starts to ``Running`` in the watch.
* **API create**: the same pod created with one POST; from the request to ``Running``. The
  difference is what kubectl itself costs (its start, discovery, the OpenAPI document).
* **baseline** in the same run: ``kubectl apply`` of a ConfigMap (kubectl's own cost, no node).
* **RSS**: the node process's ``VmRSS`` (its pods are other processes) when idle, with 100
  devices, and with 100 devices and 20 running pods.

Podman runs with a storage of the run's own (``CONTAINERS_STORAGE_CONF``) holding the busybox image.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import free_port, stop_process, wait_listening

__all__ = ["StackRun", "stack_run"]

NODE = "bench-node"
EDGETWIN = [sys.executable, "-m", "edgetwin", "--log-level", "WARNING"]
KUBECTL = Path(sys.executable).parent / "kubectl"


class PodWatch:
    """When each pod was first seen ``Running`` in the API (a watch read in a thread)."""

    def __init__(self, kubeconfig: Path) -> None:
        from cloud_sync import KubeApi

        self.api = KubeApi.from_config(kubeconfig)
        self.running: dict[str, float] = {}
        self._changed = threading.Condition()
        self._stream = self.api.open_stream(
            "/api/v1/namespaces/default/pods", {"watch": "true", "timeoutSeconds": 3600}, 3700
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._stream.lines():
                obj = json.loads(line)["object"]
                if (obj.get("status") or {}).get("phase") == "Running":
                    name = obj["metadata"]["name"]
                    with self._changed:
                        self.running.setdefault(name, time.perf_counter())
                        self._changed.notify_all()
        except Exception:  # noqa: BLE001 - closing the stream ends the thread this way
            return

    def wait(self, name: str, timeout: float = 120.0) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: name in self.running, timeout):
                raise RuntimeError(f"pod {name} was not Running within {timeout:.0f} s")
            return self.running[name]

    def close(self) -> None:
        self._stream.close()
        self.api.close()


def pod_body(name: str, image: str) -> dict[str, Any]:
    container = {"name": "app", "image": image, "command": ["sleep", "100000"]}
    spec = {"nodeName": NODE, "containers": [container], "terminationGracePeriodSeconds": 0}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def kubectl(kubeconfig: Path, *args: str, body: str | None = None) -> None:
    command = [str(KUBECTL), "--kubeconfig", str(kubeconfig), *args]
    subprocess.run(command, input=body, capture_output=True, text=True, check=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def node_devices(metrics_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(int(float(m)) for m in re.findall(r"^edgetwin_node_devices\{[^}]*\} (\S+)$", text, re.M))


class StackRun:
    def __init__(self, folder: Path, runtime: str, env: dict[str, str]) -> None:
        self.folder = folder
        self.runtime = runtime
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        folder = self.folder
        cloud_port, local_port, self.metrics_port = free_port(), free_port(), free_port()
        cloud = subprocess.Popen(
            [*EDGETWIN, "cloud", "--data-dir", str(folder / "cloud"), "--mqtt-port", str(cloud_port),
             "--apiserver-port", str(free_port()), "--admit", NODE],
            stdout=subprocess.PIPE, env=self.env,
        )  # fmt: skip
        self.processes.append(cloud)
        output = ""
        assert cloud.stdout is not None
        while "Ctrl-C stops it" not in output:
            line = cloud.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"edgetwin cloud did not start: {output}")
            output += line
        match = re.search(r"kubeconfig (\S+)", output)
        token = re.search(r"^  join token\s+(\S+)$", output, re.M)
        assert match is not None and token is not None
        self.kubeconfig = Path(match.group(1))
        broker = subprocess.Popen(
            [*EDGETWIN, "broker", "--port", str(local_port)], env=self.env, stdout=subprocess.DEVNULL
        )
        self.processes.append(broker)
        wait_listening(local_port, broker, "edgetwin broker")  # type: ignore[arg-type]
        self.node = subprocess.Popen(
            [*EDGETWIN, "node", NODE, "--broker", f"mqtt://127.0.0.1:{local_port}",
             "--data-dir", str(folder / "node"), "--cloud", f"mqtt://127.0.0.1:{cloud_port}",
             "--token", token.group(1), "--pods", self.runtime, "--metrics-port", str(self.metrics_port)],
            env=self.env, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(self.node)
        kubectl(self.kubeconfig, "wait", f"node/{NODE}", "--for=create", "--timeout=120s")
        kubectl(self.kubeconfig, "wait", f"node/{NODE}", "--for=condition=Ready", "--timeout=120s")
        self.watch = PodWatch(self.kubeconfig)

    def stop(self) -> None:
        if hasattr(self, "watch"):
            self.watch.close()
        for process in reversed(self.processes):
            stop_process(process)  # type: ignore[arg-type]

    def apply_latencies(self, image: str, count: int) -> list[float]:
        times = []
        for i in range(count):
            name = f"kubectl-{i}"
            start = time.perf_counter()
            kubectl(self.kubeconfig, "apply", "-f", "-", body=json.dumps(pod_body(name, image)))
            times.append(self.watch.wait(name) - start)
        return times

    def create_latencies(self, image: str, count: int) -> list[float]:
        times = []
        for i in range(count):
            name = f"api-{i}"
            start = time.perf_counter()
            self.watch.api.request("POST", "/api/v1/namespaces/default/pods", body=pod_body(name, image))
            times.append(self.watch.wait(name) - start)
        return times

    def kubectl_baseline(self, count: int) -> list[float]:
        times = []
        for i in range(count):
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"base-{i}"},
                "data": {"a": "b"},
            }
            start = time.perf_counter()
            kubectl(self.kubeconfig, "apply", "-f", "-", body=json.dumps(body))
            times.append(time.perf_counter() - start)
        return times

    def delete_pods(self) -> None:
        kubectl(self.kubeconfig, "delete", "pods", "--all", "--grace-period=0", "--timeout=300s")

    def rss(self, image: str, devices: int, pods: int) -> tuple[float, float, float]:
        idle = rss_mb(self.node.pid)
        model = {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": "bench-model"},
            "spec": {"protocol": "virtual", "properties": [{"name": "p", "type": "INT"}]},
        }
        docs = [model] + [
            {
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": {"name": f"dev-{i:03d}"},
                "spec": {
                    "deviceModelRef": {"name": "bench-model"},
                    "nodeName": NODE,
                    "protocol": {"protocolName": "virtual"},
                    "properties": [{"name": "p", "reportToCloud": True}],
                },
            }
            for i in range(devices)
        ]
        kubectl(self.kubeconfig, "apply", "-f", "-", body="\n---\n".join(json.dumps(d) for d in docs))
        deadline = time.monotonic() + 120
        while node_devices(self.metrics_port) < devices:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not get its devices within 120 s")
            time.sleep(0.2)
        with_devices = rss_mb(self.node.pid)
        for i in range(pods):
            body = json.dumps(pod_body(f"rss-{i}", image))
            kubectl(self.kubeconfig, "apply", "-f", "-", body=body)
        for i in range(pods):
            self.watch.wait(f"rss-{i}")
        time.sleep(1.0)  # let the status writes of the last pods settle before reading memory
        return idle, with_devices, rss_mb(self.node.pid)


@contextmanager
def stack_run(folder: Path, runtime: str, storage: Path | None) -> Iterator[StackRun]:
    env = dict(os.environ)
    folder.mkdir(parents=True, exist_ok=True)
    if storage is not None:
        conf = folder / "storage.conf"
        conf.write_text(f'[storage]\ngraphroot = "{storage / "storage"}"\nrunroot = "{storage / "run"}"\n')
        env["CONTAINERS_STORAGE_CONF"] = str(conf)
    run = StackRun(folder, runtime, env)
    try:
        run.start()
        yield run
    finally:
        run.stop()
