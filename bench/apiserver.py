"""Benchmark of the embedded API server: creates/s, status patches/s, watch fan-out latency.

Starts ``edgetwin apiserver`` in its own process on a fresh data directory and drives it over
HTTPS with aiohttp (the client in this process, the server in the other: two cores). Prints
figures; asserts nothing.

    .venv/bin/python bench/apiserver.py [--devices 10000] [--concurrency 16] [--watchers 10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

GROUP, VERSION = "devices.kubeedge.io", "v1beta1"
DEVICES = f"/apis/{GROUP}/{VERSION}/namespaces/default/devices"


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgetwin",
            "--log-level",
            "WARNING",
            "apiserver",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if " on https://" in line:
            return proc, line.split(" on ", 1)[1].split()[0]
    raise RuntimeError("edgetwin apiserver did not start")


def device(index: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Device",
        "metadata": {"name": f"bench-{index:05d}", "labels": {"bench": "yes"}},
        "spec": {
            "deviceModelRef": {"name": "modbus-thermostat-model"},
            "nodeName": f"edge-node-{index % 50}",
            "protocol": {
                "protocolName": "modbus",
                "configData": {"ip": "127.0.0.1", "port": 5020, "slaveID": 1},
            },
            "properties": [
                {
                    "name": "temperature",
                    "collectCycle": 1000,
                    "reportCycle": 2000,
                    "visitors": {
                        "protocolName": "modbus",
                        "configData": {"register": "HoldingRegister", "offset": 0},
                    },
                },
                {"name": "setpoint", "desired": {"value": "21"}},
            ],
        },
    }


async def run_all(
    session: aiohttp.ClientSession, url: str, jobs: list[tuple[str, str, Any, str]], concurrency: int
) -> float:
    """Run (method, path, body, content type) requests with ``concurrency`` in flight; return seconds."""
    queue: asyncio.Queue[tuple[str, str, Any, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            method, path, body, content_type = queue.get_nowait()
            async with session.request(
                method, url + path, data=json.dumps(body), headers={"Content-Type": content_type}
            ) as response:
                if response.status >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
                await response.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def watch_latency(session: aiohttp.ClientSession, url: str, watchers: int, rounds: int) -> list[float]:
    """Latency (ms) from sending a status patch to each watcher receiving it."""
    async with session.get(url + DEVICES + "?limit=1") as response:
        rv = (await response.json())["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    connected = 0

    async def watcher() -> None:
        nonlocal connected
        params = {"watch": "true", "resourceVersion": rv, "fieldSelector": "metadata.name=bench-00000"}
        async with session.get(
            url + DEVICES, params=params, timeout=aiohttp.ClientTimeout(total=None)
        ) as response:
            connected += 1
            if connected == watchers:
                ready.set()
            seen = 0
            async for line in response.content:
                event = json.loads(line)
                marker = event["object"].get("status", {}).get("lastOnlineTime")
                if marker in sent:
                    latencies.append((time.perf_counter() - sent[marker]) * 1000)
                    seen += 1
                    if seen == rounds:
                        return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 30)
    await asyncio.sleep(0.2)
    for index in range(rounds):
        marker = f"round-{watchers}-{index}"
        sent[marker] = time.perf_counter()
        async with session.patch(
            url + DEVICES + "/bench-00000/status",
            data=json.dumps({"status": {"lastOnlineTime": marker}}),
            headers={"Content-Type": "application/merge-patch+json"},
        ) as response:
            await response.read()
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return latencies


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--watchers", default="1,10,100")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        proc, url = start_server(data_dir)
        try:
            token = (data_dir / "token").read_text().strip()
            context = ssl.create_default_context(cafile=str(data_dir / "ca.crt"))
            connector = aiohttp.TCPConnector(ssl=context, limit=0)
            headers = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
                n = args.devices
                creates = [("POST", DEVICES, device(i), "application/json") for i in range(n)]
                seconds = await run_all(session, url, creates, args.concurrency)
                print(
                    f"creates:        {n} Devices in {seconds:.2f} s = {n / seconds:,.0f}/s "
                    f"(concurrency {args.concurrency})"
                )

                patches = [
                    (
                        "PATCH",
                        f"{DEVICES}/bench-{i:05d}/status",
                        {
                            "status": {
                                "state": "online",
                                "twins": [{"propertyName": "temperature", "reported": {"value": str(i)}}],
                            }
                        },
                        "application/merge-patch+json",
                    )
                    for i in range(n)
                ]
                seconds = await run_all(session, url, patches, args.concurrency)
                print(f"status patches: {n} in {seconds:.2f} s = {n / seconds:,.0f}/s")

                started = time.perf_counter()
                async with session.get(url + DEVICES) as response:
                    items = len((await response.json())["items"])
                print(f"list:           {items} Devices in {(time.perf_counter() - started) * 1000:.0f} ms")

                for watchers in (int(w) for w in args.watchers.split(",")):
                    latencies = await watch_latency(session, url, watchers, args.rounds)
                    print(
                        f"watch fan-out:  {watchers:>3} watchers x {args.rounds} changes: "
                        f"p50 {statistics.median(latencies):.2f} ms, p99 {percentile(latencies, 99):.2f} ms, "
                        f"max {max(latencies):.2f} ms ({n} Devices stored)"
                    )
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
