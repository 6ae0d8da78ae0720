"""Part 3 of ``bench/sync.py``: how many devices x 1 Hz one cloud-sync process ingests on one core.

Why a module of its own: the simulated nodes that load cloud-sync must pace their reports as a real
node does, and that pacing (``node_agent.uplink``) is enough code to keep apart from the rest.

A ``SimulatedNode`` is an MQTT peer on the cloud broker speaking ``twin.link`` with the node's own
credentials: a hello (answered by a sync), a heartbeat every ``CloudSettings.heartbeat`` seconds,
and ``up/report`` messages; it counts the ``down/ack`` of each. Its devices change once a second;
what goes up follows the real uplink's rules, with its own constants:

* each device goes up at most once per its report cycle, carrying the latest value (and its
  timestamp); its first report goes when its slot first comes, the slots of a node's devices
  spread evenly over the cycle (devices that came up at different moments);
* once a device is due, the node waits ``uplink.BATCH_WINDOW`` for others to fall due, and sends
  all that are due in messages of at most ``uplink.DEVICES_PER_MESSAGE`` devices; each device's
  next slot is a cycle after the message that carried it (so slots drift by the window, as they do);
* acks do not change what is sent: a device whose value changed since its last report goes at its
  next slot whether that report was acknowledged or not, as the real uplink does.

What it does not do: it keeps no outbox on disk and no twin (the real uplink's cost is the node's,
not cloud-sync's); it never resends, which the real uplink does only for a device whose value did
not change for ``resend`` seconds (here every value changes every second); it sends no device
state and no observed desired values (a steady fleet has none to send).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from _cluster import DEVICES, MODEL, BenchCluster, device
from _common import LOOPBACK, cpu_seconds, machine_cpu_seconds, percentile, table

from edgemqtt.client import BrokerAddress, Message, MqttClient
from node_agent.settings import CloudSettings
from node_agent.uplink import BATCH_WINDOW, DEVICES_PER_MESSAGE
from twin.link import DeviceReport, Heartbeat, Hello, Report, ReportedValue, node_password, up_topic

__all__ = ["ingest"]

HEARTBEAT = CloudSettings.heartbeat


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _waited(pid: int) -> float:
    """Seconds the process's main thread (cloud-sync's event loop) was ready to run but had no CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


class SimulatedNode:
    """A node as cloud-sync sees it: hello, heartbeats, and its devices' reports paced per device."""

    def __init__(self, cluster: BenchCluster, name: str, devices: list[str], cycle: float) -> None:
        self.name = name
        self.devices = devices
        self.cycle = cycle
        address = BrokerAddress(LOOPBACK, cluster.cloud_port).with_credentials(
            name, node_password(cluster.token, name)
        )
        self.client = MqttClient(
            address, client_id=f"edgetwin-node-{name}", on_message=self._on_message, clean_session=True
        )
        #: Per message awaiting its ack: when it was sent and how many devices it carried.
        self.sent: dict[int, tuple[float, int]] = {}
        self.reported = 0
        self.acked_devices = 0
        self.ack_latency: list[float] = []
        self.synced = asyncio.Event()
        self._seq = itertools.count(int(time.time() * 1000))
        self._last: dict[str, int] = {}

    def _on_message(self, message: Message) -> None:
        if message.topic.endswith("/down/sync"):
            self.synced.set()
        elif message.topic.endswith("/down/ack"):
            ack = orjson.loads(message.payload)
            sent = self.sent.pop(ack["seq"], None)
            if sent is not None:
                self.ack_latency.append(time.monotonic() - sent[0])
                self.acked_devices += sent[1]

    async def start(self) -> None:
        await self.client.connect()
        await self.client.subscribe(f"edgetwin/v1/nodes/{self.name}/down/#", qos=1)
        hello = Hello(node=self.name, id=f"bench-{self.name}", sent_at=int(time.time() * 1000))
        self.client.publish(up_topic(self.name, "hello"), hello.model_dump_json().encode(), qos=1)
        self.beat()
        await asyncio.wait_for(self.synced.wait(), 120)

    def beat(self) -> None:
        beat = Heartbeat(sent_at=int(time.time() * 1000))
        self.client.publish(up_topic(self.name, "heartbeat"), beat.model_dump_json().encode(), qos=1)

    async def report(self, active: int, seconds: float, tick: int) -> None:
        """The first ``active`` devices, each changing once a second, for ``seconds``, paced as the
        real uplink paces them."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + seconds
        self._last.clear()
        devices = self.devices[:active]
        # Each device's slot, spread over the cycle; its value changes each second at that phase.
        phase = {d: i / max(1, active) * self.cycle for i, d in enumerate(devices)}
        due = [(start + phase[d], d) for d in devices]
        heapq.heapify(due)
        next_beat = start
        while due and due[0][0] < end:
            if next_beat <= loop.time():
                self.beat()
                next_beat += HEARTBEAT
            await asyncio.sleep(max(0.0, min(due[0][0], next_beat) - loop.time()))
            if due[0][0] > loop.time():
                continue  # woken for a heartbeat
            await asyncio.sleep(BATCH_WINDOW)
            now = loop.time()
            ready = []
            while due and due[0][0] <= now:
                ready.append(heapq.heappop(due)[1])
            wall = time.time()
            changed: list[tuple[str, ReportedValue]] = []
            for device_id in ready:
                # The latest change: the device changes once a second, at its own phase.
                offset = phase[device_id] % 1.0
                count = math.floor(now - start - offset)
                if count == self._last.get(device_id):
                    continue  # nothing new since its last report (a cycle under a second): not owed
                self._last[device_id] = count
                at = int((wall - (now - start - offset - count)) * 1000)
                changed.append((device_id, ReportedValue(value=f"{tick}.{count}", timestamp=at)))
            for first in range(0, len(changed), DEVICES_PER_MESSAGE):
                chunk = changed[first : first + DEVICES_PER_MESSAGE]
                seq = next(self._seq)
                body = Report(seq=seq, devices={d: DeviceReport(twins={"temperature": v}) for d, v in chunk})
                self.sent[seq] = (time.monotonic(), len(chunk))
                self.reported += len(chunk)
                self.client.publish(up_topic(self.name, "report"), body.model_dump_json().encode(), qos=1)
            for device_id in ready:
                heapq.heappush(due, (now + self.cycle, device_id))


def _devices(total: int, nodes: int, cycle: float) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    names = [f"bench-sim-{n:02d}" for n in range(nodes)]
    per_node: dict[str, list[str]] = {name: [] for name in names}
    objects: list[dict[str, Any]] = [MODEL]
    for index in range(total):
        node = names[index % nodes]
        name = f"ing-{index:05d}"
        obj = device(name, node, report_ms=round(cycle * 1000))
        obj["metadata"]["labels"] = {"bench": "ingest"}
        objects.append(obj)
        per_node[node].append(f"default/{name}")
    return objects, per_node


async def ingest(
    cluster: BenchCluster, seconds: float, loads: list[int], *, cycle: float, nodes: int = 10
) -> None:
    total = max(loads)
    objects, per_node = _devices(total, nodes, cycle)
    async with cluster.session() as session:
        print(f"\n3. ingest: creating {total:,} Devices for {nodes} simulated nodes ...", flush=True)
        created = time.monotonic()
        await cluster.create(session, objects)
        print(f"   created in {time.monotonic() - created:.0f} s; nodes say hello ...", flush=True)
        ceiling = await api_patch_rate(session, [f"ing-{i:05d}" for i in range(min(total, 2000))])
    simulated = [SimulatedNode(cluster, name, devices, cycle) for name, devices in per_node.items()]
    await asyncio.gather(*(node.start() for node in simulated))
    assert cluster.cloud is not None
    api_pid = cluster.processes[0].pid
    rows = []
    for tick, load in enumerate(loads):
        active = load // nodes
        await asyncio.sleep(2)
        acked = sum(n.acked_devices for n in simulated)
        reported = sum(n.reported for n in simulated)
        writes = cluster.metric("edgetwin_cloud_api_writes_total", 'resource="devices/status"')
        cloud, api, busy = cpu_seconds(cluster.cloud.pid), cpu_seconds(api_pid), machine_cpu_seconds()
        waited = _waited(cluster.cloud.pid)
        for node in simulated:
            node.ack_latency.clear()
        started = time.monotonic()
        await asyncio.gather(*(node.report(active, seconds, tick) for node in simulated))
        elapsed = time.monotonic() - started
        cloud = cpu_seconds(cluster.cloud.pid) - cloud
        waited = _waited(cluster.cloud.pid) - waited
        api = cpu_seconds(api_pid) - api
        busy = machine_cpu_seconds() - busy
        written = cluster.metric("edgetwin_cloud_api_writes_total", 'resource="devices/status"') - writes
        done = sum(n.acked_devices for n in simulated) - acked
        offered = sum(n.reported for n in simulated) - reported
        latencies = sorted(x for n in simulated for x in n.ack_latency)
        per_write = cloud / max(1, written)
        rows.append(
            [
                f"{active * nodes:,}",
                f"{active * nodes / cycle:,.0f}",
                f"{offered / elapsed:,.0f}",
                f"{written / elapsed:,.0f}",
                f"{done / elapsed:,.0f} ({done / max(1, offered):.0%})",
                f"{_ms(percentile(latencies, 0.5))} / {_ms(percentile(latencies, 0.99))}",
                f"{cloud / elapsed:.2f} / {waited / elapsed:.2f}",
                f"{api / elapsed:.2f}",
                f"{(busy - cloud - api) / elapsed:.2f}",
                f"{per_write * 1e6:.0f}",
                f"{1 / per_write:,.0f}" if written else "-",
            ]
        )
        print(f"   {rows[-1]}", flush=True)
        # Let what is still queued drain before the next load (what is never acknowledged is left).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while any(n.sent for n in simulated):
                    await asyncio.sleep(0.5)
    for node in simulated:
        await node.client.close()
    print(
        f"\n3. ingest: devices changing at 1 Hz from {nodes} simulated nodes, each reported once per"
        f" reportCycle {cycle:g} s; cloud-sync on one core, {seconds:g} s each"
    )
    print(
        f"   baseline: the API server takes {ceiling:,.0f} status patches/s from a plain client, 16 in flight"
    )
    print(
        table(
            [
                "devices x 1 Hz",
                "writes/s needed",
                "device reports/s sent",
                "status writes/s",
                "device reports acked/s",
                "ack p50 / p99 ms",
                "cloud-sync cores / loop waiting for a CPU",
                "API server cores",
                "other cores",
                "cloud-sync µs per write",
                "writes/s of one core at that cost",
            ],
            rows,
        )
    )


async def api_patch_rate(session: aiohttp.ClientSession, names: list[str]) -> float:
    """Status merge patches per second the API server takes from a plain aiohttp client."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)
    twin = {"propertyName": "temperature", "reported": {"value": "1", "metadata": {"timestamp": "1"}}}
    body = json.dumps({"status": {"twins": [twin]}})

    async def worker() -> None:
        while not queue.empty():
            name = queue.get_nowait()
            async with session.patch(
                f"{DEVICES}/{name}/status",
                data=body,
                headers={"Content-Type": "application/merge-patch+json"},
            ) as response:
                await response.read()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(16)))
    return len(names) / (time.monotonic() - started)
