"""How fast ``edgetwin up`` shows live values, and how much memory each process of the stack holds.

Why: a newcomer's first minutes decide whether they stay, and a gateway's memory decides which
hardware it fits on (issue targets: first reported value of every simulated device < 3 s after
``edgetwin up`` with a warm venv; the edge node — agent, twin, broker, cloud link — ≤ 50 MB before
any protocol library is loaded, below KubeEdge edgecore's ~70 MB).

* **start-up**, ``--runs`` times in a fresh data dir each: seconds from starting ``edgetwin up``
  to its "all live" line, i.e. the first reported value of every simulated device read back from
  the Kubernetes API; split into the processes coming up and the values arriving after the samples
  are applied. Baseline in the same run: ``python -m edgetwin --help`` (the interpreter and the
  command line's imports), which every ``edgetwin`` process pays.
* **memory**: ``edgetwin up`` with ``--devices`` virtual devices (the in-memory mapper: no protocol
  library) and no simulators: ``VmRSS`` of the cloud process (API server, cloud broker,
  cloud-sync) and of the edge node process (broker, twin, store, cloud link, mapper runner). The
  baseline in the same run is a bare Python interpreter. Then one sample device per protocol is
  applied to the running stack and the RSS the node gains is read once the device has a state:
  what each protocol's mapper and library add. The Modbus and OPC UA simulators run in processes
  of their own so that their servers are not counted; BLE's simulated adapter lives in the node
  (it has to), GPIO uses gpiozero's mock pins.

Run: ``.venv/bin/python bench/startup.py [--runs 3] [--devices 100]``. Every process and folder is
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from _common import LOOPBACK, free_port, machine, stop_process, table, wait_listening

from cloud_sync import KubeApi
from edgetwin.settings import SAMPLES
from edgetwin.stack import SampleDevices

NODE = "edge-node-1"
PROTOCOL_SAMPLES = {
    "modbus": "modbus-tcp.yaml",
    "opcua": "opcua.yaml",
    "ble": "ble.yaml",
    "gpio": "gpio-led.yaml",
}


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (``VmRSS`` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def children(pid: int) -> dict[str, int]:
    """``{"cloud": PID, "node": PID}``: the ``edgetwin`` commands ``up`` started."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) != pid:  # the parent's pid is field 4 (proc(5))
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            for role in ("cloud", "node"):
                if role.encode() in argv:
                    found[role] = int(entry.name)
    return found


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Up:
    """``edgetwin up`` in its own process, its output read line by line."""

    def __init__(self, args: Sequence[str], cwd: Path) -> None:
        self.args = list(args)
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []

    async def start(self) -> None:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgetwin",
            "--log-level",
            "WARNING",
            "up",
            *self.args,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def line(self, text: str, timeout: float = 120.0) -> str:
        """The first line (from now on) that contains ``text``."""
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    tail = "\n".join(self.lines[-20:])
                    raise RuntimeError(f"edgetwin up ended before {text!r}:\n{tail}")
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if text in line:
                    return line

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.communicate(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def port_flags() -> list[str]:
    flags: list[str] = []
    for name in ("mqtt", "cloud", "apiserver", "modbus", "opcua", "dashboard"):
        flags += [f"--{name}-port", str(free_port())]
    return flags


@contextlib.asynccontextmanager
async def running_up(args: Sequence[str], cwd: Path) -> AsyncIterator[Up]:
    up = Up(args, cwd)
    try:
        await up.start()
        yield up
    finally:
        await up.stop()


# -- start-up ------------------------------------------------------------------------------------------


async def startup_run(work: Path) -> tuple[float, float]:
    """Seconds from starting ``up`` to "all live", and the part of it after the samples were applied."""
    started = time.monotonic()
    async with running_up(["--data-dir", str(work / "state"), *port_flags()], work) as up:
        live = await up.line("all live")
        total = time.monotonic() - started
        await up.line("Ctrl-C stops everything")
    match = re.search(r"all live in ([0-9.]+) s", live)
    return total, float(match.group(1)) if match else float("nan")


def cli_baseline(runs: int) -> float:
    """Median seconds of ``python -m edgetwin --help``."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "edgetwin", "--help"], capture_output=True, check=True)
        times.append(time.monotonic() - started)
    return statistics.median(times)


# -- memory --------------------------------------------------------------------------------------------


def virtual_devices(folder: Path, count: int) -> Path:
    """``count`` virtual thermometers (one DeviceModel) in one YAML file."""
    folder.mkdir(parents=True, exist_ok=True)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "devices.kubeedge.io/v1beta1",
            "kind": "DeviceModel",
            "metadata": {"name": "bench-virtual", "namespace": "default"},
            "spec": {"protocol": "virtual", "properties": [{"name": "temp", "type": "FLOAT"}]},
        }
    ]
    for index in range(count):
        visitor = {"protocolName": "virtual", "configData": {"initial": "21.5", "step": 0.1}}
        docs.append(
            {
                "apiVersion": "devices.kubeedge.io/v1beta1",
                "kind": "Device",
                "metadata": {"name": f"virtual-{index:04d}", "namespace": "default"},
                "spec": {
                    "deviceModelRef": {"name": "bench-virtual"},
                    "nodeName": NODE,
                    "protocol": {"protocolName": "virtual", "configData": {}},
                    "properties": [
                        {
                            "name": "temp",
                            "collectCycle": 1000,
                            "reportCycle": 1000,
                            "reportToCloud": True,
                            "visitors": visitor,
                        }
                    ],
                },
            }
        )
    path = folder / "virtual.yaml"
    path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    return path


def bare_python_rss() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        return rss_mb(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=5)


async def has_state(api: KubeApi, name: str, timeout: float = 90.0) -> str:
    """Wait until the Device ``name`` has a known state in its status (its mapper has tried it)."""
    path = f"/apis/devices.kubeedge.io/v1beta1/namespaces/default/devices/{name}"
    async with asyncio.timeout(timeout):
        while True:
            obj = await api.get(path)
            state = (obj.get("status") or {}).get("state")
            if state and state != "unknown":
                return str(state)
            await asyncio.sleep(0.2)


@contextlib.contextmanager
def simulator(module: str, port: int) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", LOOPBACK, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, module, timeout=30)
        yield proc
    finally:
        stop_process(proc)


async def memory(work: Path, devices: int, settle: float) -> tuple[list[list[str]], dict[str, float]]:
    folder = work / "devices"
    virtual_devices(folder, devices)
    flags = port_flags()
    ports = dict(zip(flags[::2], flags[1::2], strict=True))
    modbus_port, opcua_port = int(ports["--modbus-port"]), int(ports["--opcua-port"])
    args = ["--data-dir", str(work / "state"), "--devices", str(folder), "--no-simulators", "--no-dashboard"]
    rows: list[list[str]] = []
    figures: dict[str, float] = {}
    with (
        simulator("mappers.modbus.simulator", modbus_port),
        simulator("mappers.opcua.simulator", opcua_port),
    ):
        async with running_up([*args, *flags], work) as up:
            await up.line("all live", timeout=180)
            await up.line("Ctrl-C stops everything")
            assert up.proc is not None
            pids = children(up.proc.pid)
            await asyncio.sleep(settle)
            figures["cloud"] = rss_mb(pids["cloud"])
            figures["node"] = rss_mb(pids["node"])
            rows.append(
                [
                    f"cloud (API server, cloud broker, cloud-sync), {devices} Devices",
                    f"{figures['cloud']:.1f}",
                ]
            )
            rows.append(
                [f"edge node, {devices} virtual devices, no protocol library", f"{figures['node']:.1f}"]
            )
            api = KubeApi.from_config(work / "state" / "cloud" / "apiserver" / "kubeconfig")
            try:
                before = figures["node"]
                for protocol, file in PROTOCOL_SAMPLES.items():
                    samples = SampleDevices.load(
                        [SAMPLES / file], node=NODE, modbus_port=modbus_port, opcua_port=opcua_port
                    )
                    await samples.apply_missing(api)
                    states = [await has_state(api, name) for name in samples.devices]
                    await asyncio.sleep(settle)
                    after = rss_mb(pids["node"])
                    figures[protocol] = after - before
                    rows.append(
                        [f"+ {protocol} mapper and library ({', '.join(states)})", f"+{after - before:.1f}"]
                    )
                    before = after
                rows.append(["edge node with every protocol", f"{before:.1f}"])
            finally:
                await api.aclose()
    return rows, figures


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="start-up runs (default 3)")
    parser.add_argument("--devices", type=int, default=100, help="virtual devices for the memory figures")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS (default 3)")
    args = parser.parse_args(argv)
    print(f"# edgetwin up: start-up and memory\n{machine()}; load average before: {load_average()}\n")
    with tempfile.TemporaryDirectory(prefix="edgetwin-bench-startup-") as tmp:
        work = Path(tmp)
        baseline = cli_baseline(args.runs)
        runs = [await startup_run(work / f"run-{index}") for index in range(args.runs)]
        totals = sorted(total for total, _ in runs)
        after_apply = sorted(part for _, part in runs)
        median = statistics.median(totals)
        print(
            table(
                ["start-up (warm venv)", "median s", "max s"],
                [
                    [
                        "`edgetwin up` → every simulated device's first value in the API",
                        f"{median:.2f}",
                        f"{totals[-1]:.2f}",
                    ],
                    [
                        "  of which: samples applied → first values",
                        f"{statistics.median(after_apply):.2f}",
                        f"{after_apply[-1]:.2f}",
                    ],
                    ["baseline: `python -m edgetwin --help`", f"{baseline:.2f}", ""],
                ],
            )
        )
        print(f"\nratio: start-up / CLI start = {median / baseline:.1f}x\n")
        rows, figures = await memory(work / "memory", args.devices, args.settle)
        bare = bare_python_rss()
        rows.append(["baseline: bare Python interpreter", f"{bare:.1f}"])
        print(table(["process", "RSS MB"], rows))
        print(f"\nratio: edge node (no protocol library) / bare Python = {figures['node'] / bare:.1f}x")
        print(f"load average after: {load_average()}")


if __name__ == "__main__":
    asyncio.run(main())
