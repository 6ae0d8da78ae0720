"""OPC UA: what the mapper costs over raw asyncua reads, and how fast a pushed change reaches the twin.

Starts the sample OPC UA simulator in its own process (as a machine would be: ``python -m
mappers.opcua.simulator``), then, in the same run:

1. **Polling**: reads the sample's 6 variables four ways, each for ``--seconds`` x ``--rounds``
   in all, the variants taking turns in 0.2 s slices so that other load on the machine falls on
   all of them alike:

   raw one-by-one     asyncua ``Node.read_value()`` for each node
   mapper one-by-one  ``OpcuaMapper.read`` for each of 6 properties (conversion to the model type)
   raw batch          asyncua ``Client.read_values(nodes)``: one Read request
   mapper batch       ``OpcuaMapper.read_many`` of the 6 properties, as the runner calls it

2. **Subscription latency**: a broker (mosquitto, or ``--broker embedded``) and ``edgetwin node``
   with the OPC UA mapper in their own processes serve a Device in subscription mode. This process
   writes a new PressureLimit every ``--interval`` seconds with its own asyncua client and measures
   the time until (a) its own raw asyncua subscription to the same node sees the change (the
   baseline) and (b) the twin publishes the document with that value on the broker. Both clocks
   start at the same write.

Prints figures and ratios; no thresholds (speed is measured here, correctness in tests/).

    .venv/bin/python bench/opcua_poll.py [--seconds 2] [--rounds 3] [--changes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import yaml
from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    broker_process,
    free_port,
    machine,
    machine_cpu_seconds,
    percentile,
    stop_process,
    table,
    wait_listening,
)

from edgemqtt.client import BrokerAddress, Message, MqttClient
from mappers.binding import bind_device
from mappers.bus import Buses
from mappers.opcua.plugin import OpcuaMapper
from mappers.opcua.simulator import SAMPLE_PATH
from twin.models import Device, DeviceModel

NODES = {  # property -> (node, DeviceModel type)
    "temperature": ("Temperature", "DOUBLE"),
    "pressure": ("Pressure", "FLOAT"),
    "valve": ("Valve", "BOOLEAN"),
    "limit": ("PressureLimit", "FLOAT"),
    "starts": ("BurnerStarts", "INT"),
    "model": ("Model", "STRING"),
}


def manifests(url: str, *, mode: str = "poll", publishing_ms: float = 20) -> tuple[Device, DeviceModel]:
    model = DeviceModel.model_validate(
        {
            "metadata": {"name": "bench-boiler-model", "namespace": "bench"},
            "spec": {
                "protocol": "opcua",
                "properties": [{"name": n, "type": t} for n, (_, t) in NODES.items()],
            },
        }
    )
    device = Device.model_validate(
        {
            "metadata": {"name": "boiler", "namespace": "bench"},
            "spec": {
                "deviceModelRef": {"name": "bench-boiler-model"},
                "nodeName": "bench-node",
                "protocol": {
                    "protocolName": "opcua",
                    "configData": {"url": url, "mode": mode, "publishingInterval": publishing_ms},
                },
                "properties": [
                    {
                        "name": n,
                        "collectCycle": 1000,
                        "visitors": {
                            "protocolName": "opcua",
                            "configData": {"nodeID": f"ns=2;s=Boiler.{node}"},
                        },
                    }
                    for n, (node, _) in NODES.items()
                ],
            },
        }
    )
    return device, model


SLICE = 0.2  # seconds per turn: the variants take turns, so the machine's load falls on all alike


async def measure(action: Callable[[], Awaitable[int]], seconds: float) -> tuple[int, float, float]:
    """Properties read, wall seconds and this process's CPU seconds for ``seconds`` of ``action``."""
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += await action()
    return done, time.perf_counter() - start, time.process_time() - cpu


async def polling(url: str, seconds: float, rounds: int) -> dict[str, tuple[float, float]]:
    device, model = manifests(url)
    props = list(bind_device(device, model, OpcuaMapper).device.properties)
    client = Client(url)
    await client.connect()
    nodes = [client.get_node(f"ns=2;s=Boiler.{node}") for node, _ in NODES.values()]
    count = len(nodes)

    async def raw_single() -> int:
        for node in nodes:
            await node.read_value()
        return count

    async def raw_batch() -> int:
        await client.read_values(nodes)
        return count

    best: dict[str, tuple[float, float]] = {}  # name -> (properties/s, CPU µs/property)
    try:
        async with OpcuaMapper(bind_device(device, model, OpcuaMapper).device, Buses()) as mapper:

            async def mapper_single() -> int:
                for prop in props:
                    await mapper.read(prop)
                return count

            async def mapper_batch() -> int:
                await mapper.read_many(props)
                return count

            variants = {
                "raw one-by-one": raw_single,
                "mapper one-by-one": mapper_single,
                "raw batch": raw_batch,
                "mapper batch": mapper_batch,
            }
            totals = {name: [0, 0.0, 0.0] for name in variants}
            for action in variants.values():
                await measure(action, SLICE)  # warm up: connections, caches, the first requests
            for _ in range(max(1, round(seconds * rounds / SLICE))):
                for name, action in variants.items():
                    done, wall, cpu = await measure(action, SLICE)
                    total = totals[name]
                    total[0] += done
                    total[1] += wall
                    total[2] += cpu
            for name, (done, wall, cpu) in totals.items():
                best[name] = (done / wall, cpu / done * 1e6)
    finally:
        await client.disconnect()
    return best


async def latency(
    url: str, broker: BrokerAddress, changes: int, interval: float, publishing_ms: float
) -> tuple[list[float], list[float], int]:
    """Write ``changes`` values; ms until a raw subscription, and until the twin's document, saw each."""
    sent: dict[float, float] = {}
    raw: dict[float, float] = {}
    twin: dict[float, float] = {}
    ready = asyncio.Event()

    def on_document(message: Message) -> None:
        now = time.perf_counter()
        body = orjson.loads(message.payload)
        current = ((body.get("twin") or {}).get("limit") or {}).get("current") or {}
        text = (current.get("actual") or {}).get("value")
        if text is None:
            return
        value = float(text)
        ready.set()
        if value in sent and value not in twin:
            twin[value] = (now - sent[value]) * 1000

    topic = "$hw/events/device/bench/boiler/twin/update/document"
    async with MqttClient(broker, client_id="bench-opcua-latency", on_message=on_document) as mqtt:
        await mqtt.subscribe(topic)
        client = Client(url)
        await client.connect()
        try:
            node = client.get_node("ns=2;s=Boiler.PressureLimit")
            sub = await client.create_subscription(publishing_ms, None)  # as the device's
            await sub.subscribe_data_change(node, sampling_interval=0)

            async def raw_changes() -> None:
                async for event in sub:
                    now = time.perf_counter()
                    if isinstance(event, DataChangeEvent) and event.value in sent and event.value not in raw:
                        raw[event.value] = (now - sent[event.value]) * 1000

            watcher = asyncio.create_task(raw_changes())
            await node.write_value(ua.Variant(0.25, ua.VariantType.Float))
            async with asyncio.timeout(30):  # the node has connected and subscribed
                await ready.wait()
            for i in range(changes):
                value = 1.0 + (i % 4000) * 0.25  # exact in a Float, distinct per change
                sent[value] = time.perf_counter()
                await node.write_value(ua.Variant(value, ua.VariantType.Float))
                await asyncio.sleep(interval)
            await asyncio.sleep(max(1.0, interval * 5))
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await sub.delete()
        finally:
            await client.disconnect()
    lost = changes - len(twin)
    return sorted(raw.values()), sorted(twin.values()), lost


def start_node(workdir: Path, broker_port: int, url: str, publishing_ms: float) -> subprocess.Popen[bytes]:
    device, model = manifests(url, mode="subscribe", publishing_ms=publishing_ms)
    file = workdir / "boiler.yaml"
    docs = [
        model.model_dump(mode="json", exclude_none=True),
        device.model_dump(mode="json", exclude_none=True),
    ]
    file.write_text(yaml.safe_dump_all(docs))
    command = [sys.executable, "-m", "edgetwin", "--log-level", "WARNING", "node", "bench-node"]
    command += ["--broker", f"mqtt://127.0.0.1:{broker_port}", "--data-dir", str(workdir / "node")]
    command += ["--devices", str(file), "--mappers", "opcua"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per polling variant and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (seconds x rounds per variant in all)")
    parser.add_argument("--changes", type=int, default=200, help="value changes for the latency phase")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between value changes")
    parser.add_argument("--publishing-interval", type=float, default=20, help="ms, the device's subscription")
    parser.add_argument("--broker", choices=["mosquitto", "embedded"], default="mosquitto")
    args = parser.parse_args()

    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}{SAMPLE_PATH}"
    busy_before = machine_cpu_seconds()
    wall_before = time.monotonic()
    sim = subprocess.Popen(
        [sys.executable, "-m", "mappers.opcua.simulator", "--port", str(port), "--drift", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, sim, "the OPC UA simulator", timeout=30)
        figures = asyncio.run(polling(url, args.seconds, args.rounds))
        with tempfile.TemporaryDirectory() as tmp, broker_process(args.broker, Path(tmp)) as (broker_port, _):
            node = start_node(Path(tmp), broker_port, url, args.publishing_interval)
            try:
                broker = BrokerAddress.parse(f"mqtt://127.0.0.1:{broker_port}")
                raw, twin, lost = asyncio.run(
                    latency(url, broker, args.changes, args.interval, args.publishing_interval)
                )
            finally:
                stop_process(node)
    finally:
        stop_process(sim)
    load = (machine_cpu_seconds() - busy_before) / (time.monotonic() - wall_before)

    total = args.seconds * args.rounds
    print(f"OPC UA, asyncua simulator in its own process, {len(NODES)} variables, {total:g} s per variant")
    print(f"machine: {machine()}; all processes busy {load:.2f} cores on average during the run")
    rows = [[name, f"{speed:,.0f}", f"{cpu:.1f}"] for name, (speed, cpu) in figures.items()]
    print(table(["variant", "properties/s", "CPU µs/property"], rows))

    def overhead(mapper: str, raw_name: str) -> str:
        speed = 1 - figures[mapper][0] / figures[raw_name][0]
        cpu = figures[mapper][1] / figures[raw_name][1] - 1
        return f"{speed:+.1%} throughput, {cpu:+.1%} CPU"

    print(f"mapper overhead, one-by-one: {overhead('mapper one-by-one', 'raw one-by-one')}")
    print(f"mapper overhead, batch:      {overhead('mapper batch', 'raw batch')}")
    speedup = figures["mapper batch"][0] / figures["mapper one-by-one"][0]
    print(f"batch read speed-up through the mapper: {speedup:.1f}x")
    print()
    print(
        f"subscription latency, {args.changes} changes every {args.interval * 1000:g} ms, "
        f"publishingInterval {args.publishing_interval:g} ms, broker {args.broker}:"
    )
    lat_rows = []
    for name, values in (("raw asyncua subscription", raw), ("twin document (mapper + twin + MQTT)", twin)):
        lat_rows.append(
            [
                name,
                str(len(values)),
                f"{percentile(values, 0.5):.1f}",
                f"{percentile(values, 0.99):.1f}",
                f"{max(values, default=float('nan')):.1f}",
            ]
        )
    print(table(["path", "changes seen", "p50 ms", "p99 ms", "max ms"], lat_rows))
    if raw and twin:
        print(
            f"twin / raw: p50 {percentile(twin, 0.5) / percentile(raw, 0.5):.2f}x, "
            f"p99 {percentile(twin, 0.99) / percentile(raw, 0.99):.2f}x; "
            f"added p50 {percentile(twin, 0.5) - percentile(raw, 0.5):.1f} ms"
        )
    if lost:
        print(f"{lost} change(s) never reached the twin (coalesced within a publishing interval, or lost)")


if __name__ == "__main__":
    main()
