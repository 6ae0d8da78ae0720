"""The cloud link measured end to end: edge->status latency, status write pacing, cloud-sync's ingest
rate, the node agent's memory with the link up, and its start-up time from its own store.

Why: issue 8 asks for these five figures. Every piece runs in its own process, as deployed
(``bench/_cluster.py``): ``edgetwin apiserver``, mosquitto as the cloud broker (with the password
file and ACL ``edgetwin cloud`` writes) and as the nodes' local broker, ``edgetwin cloud``, and
``edgetwin node`` processes (without ``--mappers``: no protocol library is loaded). This script
plays the devices (reported values published on the local broker, as a mapper does), the
simulated nodes of the ingest test (MQTT peers speaking ``twin.link``), and the watcher of the
Kubernetes API. Figures, each with its baseline from the same run:

1. **edge->status latency**: a reported value published at the node's twin -> the Device's status
   holding it, seen by a watch; p50/p99. Each device changes once per 1.25 report cycles, so no
   value waits for its cycle. Baseline: a status merge patch sent straight to the API -> the same
   watch (the API's own share).
2. **status writes per device per second** at 1, 10 and 100 updates/s per device (reportCycle 1 s):
   must stay ≤ 1 per cycle. Baseline: the updates offered.
3. **ingest** (``bench/_ingest.py``): devices x 1 Hz that one cloud-sync process (pinned to one
   core with ``taskset``) turns into status writes and acks, from simulated nodes that pace their
   reports as a real node does, at rising loads; its CPU per status write, and what one core would
   take at that cost. Baseline: the API server's own status patch
   rate (``bench/apiserver.py``) caps what any writer gets from it.
4. **node RSS** with 1,000 devices and the cloud link up, idle and with every device reporting at
   1 Hz. Baseline: the same node and store without ``--cloud``.
5. **start -> first answered ``twin/get``** with 1,000 devices from the node's store, with
   ``PYTHONDONTWRITEBYTECODE=1`` and no cached bytecode for edgetwin's modules (as this machine
   runs, recompiling them at every start) and with bytecode cached. Baseline: a bare
   ``python -c pass`` in the same setting; KubeEdge's edgecore 0.7-0.8 s (NOTES.md).

Run: ``.venv/bin/python bench/sync.py [--seconds 10] [--ingest 1000,2500,5000,10000]
[--ingest-cycle 1] [--only latency,rates,node,ingest]``. Only 127.0.0.1 is used; every process
and folder it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _cluster import (
    DEVICES,
    MODEL,
    BenchCluster,
    bench_cluster,
    device,
    environment,
    load_average,
    memory,
)
from _common import LOOPBACK, cpu_seconds, machine, percentile, table
from _ingest import ingest

from edgemqtt.client import BrokerAddress, MqttClient
from twin.client import TwinClient
from twin.errors import RequestRefused
from twin.wire import encode_request, encode_update

VERSIONS = "twin.edgetwin.io/desired-versions"
CYCLE = 1.0  # seconds: the devices' reportCycle (KubeEdge's default)
REPO = Path(__file__).resolve().parents[1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def mb(size: float) -> str:
    return f"{size / 2**20:.1f}"


async def watch_devices(
    session: aiohttp.ClientSession, selector: str, on_object: Callable[[dict[str, Any], float], None]
) -> None:
    """Hand every version of the selected Devices to ``on_object`` with its arrival time, until cancelled."""
    async with session.get(DEVICES, params={"limit": "1"}) as response:
        version = (await response.json())["metadata"]["resourceVersion"]
    params = {"watch": "true", "labelSelector": selector, "resourceVersion": version}
    async with session.get(DEVICES, params=params) as response:
        async for line in response.content:
            event = orjson.loads(line)
            if event.get("type") == "MODIFIED":
                on_object(event["object"], time.time())


@contextlib.asynccontextmanager
async def watching(
    session: aiohttp.ClientSession, selector: str, on_object: Callable[[dict[str, Any], float], None]
) -> AsyncIterator[None]:
    task = asyncio.create_task(watch_devices(session, selector, on_object))
    await asyncio.sleep(0.5)  # the watch is open before anything is measured
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def reported_temperature(obj: dict[str, Any]) -> tuple[str, int] | None:
    for twin in (obj.get("status") or {}).get("twins") or []:
        if twin.get("propertyName") == "temperature" and "reported" in twin:
            entry = twin["reported"]
            return str(entry["value"]), int(entry["metadata"]["timestamp"])
    return None


async def until_members(local: BrokerAddress, node: str, count: int, timeout: float = 300.0) -> float:
    """Wait until the node serves ``count`` devices (asked on its local broker); the seconds it took."""
    started = time.monotonic()
    async with TwinClient(local) as app, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(RequestRefused):  # busy taking its devices in: ask again
                if len(await app.members(node)) >= count:
                    return time.monotonic() - started
            await asyncio.sleep(0.2)


async def until_stamped(cluster: BenchCluster, label: str, count: int) -> None:
    """Wait until cloud-sync has stamped the desired values of ``count`` Devices labelled ``label``."""
    async with cluster.session() as session:
        while True:
            async with session.get(DEVICES, params={"labelSelector": f"bench={label}"}) as response:
                items = (await response.json())["items"]
            annotated = [d for d in items if VERSIONS in ((d["metadata"].get("annotations")) or {})]
            if len(annotated) >= count:
                return
            await asyncio.sleep(0.5)


def labelled(obj: dict[str, Any], label: str) -> dict[str, Any]:
    obj["metadata"]["labels"] = {"bench": label}
    return obj


# -- 1. edge->status latency ---------------------------------------------------------------------------


async def latency(cluster: BenchCluster, seconds: float) -> None:
    count, period = 20, 1.25 * CYCLE
    node = "bench-latency"
    local = BrokerAddress(LOOPBACK, cluster.local_port)
    async with cluster.session() as session:
        edge = [labelled(device(f"lat-{i:02d}", node), "latency") for i in range(count)]
        base = [labelled(device(f"base-{i:02d}", "bench-nobody"), "baseline") for i in range(count)]
        await cluster.create(session, [MODEL, *edge, *base])
        with cluster.node(node, cluster.workdir / node):
            await until_members(local, node, count)
            values = itertools.count(1000)

            # Baseline: status patches straight to the API, same devices count and pace.
            sent: dict[str, float] = {}
            seen: list[float] = []

            def on_baseline(obj: dict[str, Any], at: float) -> None:
                got = reported_temperature(obj)
                if got is not None and got[0] in sent:
                    seen.append(at - sent.pop(got[0]))

            async with watching(session, "bench=baseline", on_baseline):
                started = time.monotonic()
                while time.monotonic() - started < seconds:
                    for item in base:
                        value = str(next(values))
                        stamp = int(time.time() * 1000)
                        twin = {
                            "propertyName": "temperature",
                            "reported": {"value": value, "metadata": {"timestamp": str(stamp)}},
                        }
                        path = f"{DEVICES}/{item['metadata']['name']}/status"
                        sent[value] = time.time()
                        async with session.patch(
                            path,
                            data=json.dumps({"status": {"twins": [twin]}}),
                            headers={"Content-Type": "application/merge-patch+json"},
                        ) as response:
                            await response.read()
                        await asyncio.sleep(period / count)
                await asyncio.sleep(2)

            # The edge: reported values published at the node's twin, as a mapper does.
            published: dict[str, float] = {}
            edge_seen: list[float] = []
            from_twin: list[float] = []

            def on_edge(obj: dict[str, Any], at: float) -> None:
                got = reported_temperature(obj)
                if got is not None and got[0] in published:
                    edge_seen.append(at - published.pop(got[0]))
                    from_twin.append(at - got[1] / 1000)

            before = cpu_seconds(cluster.cloud.pid) if cluster.cloud else 0.0
            async with watching(session, "bench=latency", on_edge), MqttClient(local) as mqtt:
                started = time.monotonic()
                sent_count = 0
                while time.monotonic() - started < seconds:
                    for index in range(count):
                        value = str(next(values))
                        published[value] = time.time()
                        body = encode_update("", reported={"temperature": (value, 0)})
                        mqtt.publish(f"$hw/events/device/default/lat-{index:02d}/twin/update", body, qos=0)
                        sent_count += 1
                        await asyncio.sleep(period / count)
                await asyncio.sleep(3)
            cloud_cpu = (cpu_seconds(cluster.cloud.pid) if cluster.cloud else 0.0) - before
    seen.sort()
    edge_seen.sort()
    from_twin.sort()
    rows = [
        [
            "status patch -> watch (baseline)",
            len(seen),
            ms(percentile(seen, 0.5)),
            ms(percentile(seen, 0.99)),
            "1.0",
        ],
        [
            "edge publish -> status watch",
            len(edge_seen),
            ms(percentile(edge_seen, 0.5)),
            ms(percentile(edge_seen, 0.99)),
            f"{percentile(edge_seen, 0.5) / percentile(seen, 0.5):.1f}",
        ],
        [
            "twin timestamp -> status watch",
            len(from_twin),
            ms(percentile(from_twin, 0.5)),
            ms(percentile(from_twin, 0.99)),
            "",
        ],
    ]
    print(f"\n1. edge->status latency: {count} devices, one change each per {period:g} s, {seconds:g} s")
    print(table(["path", "values", "p50 ms", "p99 ms", "p50 x baseline"], rows))
    lost = sent_count - len(edge_seen)
    print(f"   values never seen in the status: {lost} (a newer value of the device can overtake one)")
    print(f"   cloud-sync CPU: {cloud_cpu / max(1, len(edge_seen)) * 1e6:.0f} µs per value written")


# -- 2. status writes per device per second -----------------------------------------------------------


class StatusWrites:
    """When each Device's status changed, as a watch sees it."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self._last: dict[str, Any] = {}

    def seen(self, obj: dict[str, Any], at: float) -> None:
        name = obj["metadata"]["name"]
        status = obj.get("status")
        if status != self._last.get(name):
            self._last[name] = status
            self.times[name].append(at)


async def write_rates(cluster: BenchCluster, seconds: float, rates: list[int]) -> None:
    count = 10
    node = "bench-rates"
    local = BrokerAddress(LOOPBACK, cluster.local_port)
    rows = []
    async with cluster.session() as session:
        await cluster.create(
            session, [MODEL, *(labelled(device(f"rate-{i}", node), "rates") for i in range(count))]
        )
        with cluster.node(node, cluster.workdir / node) as agent:
            await until_members(local, node, count)
            for rate in rates:
                writes = StatusWrites()
                cloud_before, node_before = cpu_seconds(cluster.cloud.pid), cpu_seconds(agent.pid)  # type: ignore[union-attr]
                async with watching(session, "bench=rates", writes.seen), MqttClient(local) as mqtt:
                    loop = asyncio.get_running_loop()
                    start = loop.time()
                    sent = 0
                    for tick in itertools.count():
                        at = start + tick / rate
                        if at - start >= seconds:
                            break
                        await asyncio.sleep(max(0.0, at - loop.time()))
                        for index in range(count):
                            body = encode_update("", reported={"temperature": (f"{rate}.{tick}", 0)})
                            mqtt.publish(f"$hw/events/device/default/rate-{index}/twin/update", body, qos=0)
                            sent += 1
                    await asyncio.sleep(2 * CYCLE)  # the last cycle's writes
                cloud_cpu = cpu_seconds(cluster.cloud.pid) - cloud_before  # type: ignore[union-attr]
                node_cpu = cpu_seconds(agent.pid) - node_before
                total = sum(len(w) for w in writes.times.values())
                window = seconds + 2 * CYCLE
                gaps = [b - a for w in writes.times.values() for a, b in itertools.pairwise(w)]
                most = max((len(w) for w in writes.times.values()), default=0)
                rows.append(
                    [
                        f"{rate}/s",
                        f"{sent / count / seconds:.1f}",
                        f"{total / count / window:.2f}",
                        f"{total / max(1, sent):.3f}",
                        f"{min(gaps):.2f}" if gaps else "-",
                        f"{most} of at most {math.ceil(window / CYCLE)}",
                        f"{cloud_cpu / window:.2f} / {node_cpu / window:.2f}",
                    ]
                )
                await asyncio.sleep(CYCLE)
    print(f"\n2. status writes per device: {count} devices, reportCycle {CYCLE:g} s, {seconds:g} s per rate")
    print(
        table(
            [
                "updates/s per device",
                "offered /s",
                "writes/s per device",
                "writes per update",
                "min gap s",
                "most writes of a device",
                "cores cloud-sync / node",
            ],
            rows,
        )
    )


# -- 4 and 5. the node: memory and start-up --------------------------------------------------------------


async def reporting(local: BrokerAddress, count: int, seconds: float) -> None:
    """Every device reports a new value once a second, as its mapper would."""
    async with MqttClient(local) as mqtt:
        for second in range(int(seconds)):
            for index in range(count):
                body = encode_update("", reported={"temperature": (f"{second}.5", 0)})
                mqtt.publish(f"$hw/events/device/default/mem-{index:04d}/twin/update", body, qos=0)
                if index % 50 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(1)


async def node_memory(cluster: BenchCluster, seconds: float, count: int = 1000) -> Path:
    node = "bench-node"
    data = cluster.workdir / node
    local = BrokerAddress(LOOPBACK, cluster.local_port)
    async with cluster.session() as session:
        devices = [labelled(device(f"mem-{i:04d}", node, desired="21"), "node") for i in range(count)]
        await cluster.create(session, [MODEL, *devices])
    await until_stamped(cluster, "node", count)
    rows = []
    # With the link first: the cloud sends the node its devices; the baseline then serves that store.
    for cloud in (True, False):
        started = time.monotonic()
        with cluster.node(node, data, cloud=cloud) as agent:
            if cloud:
                # The outbox is written once the node has applied its first sync.
                while not (data / "outbox.json").exists():
                    await asyncio.sleep(0.05)
                took = time.monotonic() - started
                print(f"   first sync of {count:,} devices applied {took:.1f} s after the node started")
            await until_members(local, node, count)
            await asyncio.sleep(2)
            idle = memory(agent.pid)
            await reporting(local, count, seconds)
            label = "with the cloud link" if cloud else "without --cloud (baseline)"
            rows.append([label, mb(idle), mb(memory(agent.pid)), mb(memory(agent.pid, "VmHWM"))])
    print(
        f"\n4. node agent memory: {count:,} devices, no --mappers; then {seconds:g} s of 1 Hz reports of each"
    )
    print(table(["node", "RSS idle MB", "RSS reporting MB", "peak RSS MB"], rows))
    return data


async def first_answer(
    command: list[str], env: dict[str, str], local: BrokerAddress, device_id: str
) -> float:
    """Seconds from starting ``command`` to the first ``twin/get`` answer for ``device_id``."""
    answered = asyncio.Event()
    topic = f"$hw/events/device/{device_id}/twin/get"
    async with MqttClient(local, on_message=lambda _: answered.set()) as mqtt:
        await mqtt.subscribe(topic + "/result")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            while not answered.is_set():
                mqtt.publish(topic, encode_request("bench"), qos=0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(answered.wait(), 0.005)
            return time.monotonic() - started
        finally:
            proc.terminate()
            await proc.wait()


async def start_times(cluster: BenchCluster, data: Path, runs: int) -> None:
    node = "bench-node"
    local = BrokerAddress(LOOPBACK, cluster.local_port)
    cached = [
        p
        for p in ("twin", "edgemqtt", "edgetwin", "mappers", "node-agent")
        if any((REPO / p).rglob("__pycache__"))
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgetwin-pyc-") as prefix:
        settings = [
            (
                "PYTHONDONTWRITEBYTECODE=1, edgetwin's modules compiled at start (this machine)",
                environment(bytecode=False),
            ),
            (
                "bytecode cached (PYTHONPYCACHEPREFIX, warmed once)",
                {**environment(bytecode=True), "PYTHONPYCACHEPREFIX": prefix},
            ),
        ]
        command = cluster.node_command(node, data)
        bare = [sys.executable, "-c", "pass"]
        await first_answer(command, settings[1][1], local, "default/mem-0000")  # warms the cache
        times: list[list[float]] = [[], []]
        floors: list[list[float]] = [[], []]
        for _ in range(runs):  # the settings alternate, so that the machine's load weighs on both
            for index, (_, env) in enumerate(settings):
                started = time.monotonic()
                await asyncio.to_thread(subprocess.run, bare, env=env, check=True)
                floors[index].append(time.monotonic() - started)
                times[index].append(await first_answer(command, env, local, "default/mem-0000"))
        for (label, _), measured, floor in zip(settings, times, floors, strict=True):
            measured.sort()
            floor.sort()
            rows.append(
                [
                    label,
                    f"{measured[0]:.2f}",
                    f"{percentile(measured, 0.5):.2f}",
                    f"{measured[-1]:.2f}",
                    f"{percentile(floor, 0.5):.3f}",
                ]
            )
    print(f"\n5. start -> first answered twin/get, 1,000 devices from its store, --cloud, {runs} runs each")
    print(table(["setting", "min s", "median s", "max s", "python -c pass s"], rows))
    if cached:
        print(f"   note: __pycache__ folders exist in {', '.join(cached)}: the first row read some bytecode")
    print("   KubeEdge's edgecore on this machine type: 0.7-0.8 s (NOTES.md)")


# -- main --------------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    parts = set(args.only.split(","))
    nodes = ["bench-latency", "bench-rates", "bench-node", *(f"bench-sim-{n:02d}" for n in range(10))]
    workdir = Path(tempfile.mkdtemp(prefix="edgetwin-bench-sync-"))
    print(f"{machine()}; load average before: {load_average()}", flush=True)
    try:
        cpus = None if shutil.which("taskset") is None else str(args.cloud_cpu)
        with bench_cluster(workdir, nodes, cloud_cpus=cpus) as cluster:
            if "latency" in parts:
                await latency(cluster, args.seconds)
            if "rates" in parts:
                await write_rates(cluster, args.seconds, [1, 10, 100])
            if "node" in parts:
                data = await node_memory(cluster, args.seconds)
                await start_times(cluster, data, args.runs)
            if "ingest" in parts:
                loads = [int(n) for n in args.ingest.split(",")]
                await ingest(cluster, args.seconds, loads, cycle=args.ingest_cycle)
    finally:
        print(f"\nload average after: {load_average()}")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each measured phase (10)")
    parser.add_argument(
        "--ingest", default="1000,2500,5000,10000", help="devices x 1 Hz offered to cloud-sync"
    )
    parser.add_argument(
        "--ingest-cycle",
        type=float,
        default=CYCLE,
        metavar="SECONDS",
        help="the reportCycle of the ingest part's Devices: status writes coalesce to devices / cycle (1)",
    )
    parser.add_argument("--runs", type=int, default=5, help="starts timed per setting (5)")
    parser.add_argument("--cloud-cpu", type=int, default=1, help="the core cloud-sync is pinned to (1)")
    parser.add_argument("--only", default="latency,rates,node,ingest", help="which parts to run")
    arguments = parser.parse_args()
    if not arguments.ingest_cycle > 0:
        parser.error(f"--ingest-cycle must be a positive number of seconds, not {arguments.ingest_cycle:g}")
    asyncio.run(main(arguments))
