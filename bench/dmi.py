"""Reported values per second through KubeEdge's DMI into the twin, against the same reports over MQTT.

Why: mapper-framework mappers report over DMI (gRPC on a Unix socket), one ``ReportDeviceStatus``
per property; KubeEdge's edge refuses them beyond 1 call/s (burst 100) for the whole node. edgetwin
answers every report and coalesces what the twin has not taken yet (node_agent/dmi/reports.py).
This measures, in one run and with the same devices, twin and documents:

* **mqtt**: reported updates on ``$hw/events/device/{ns}/{name}/twin/update`` with at most
  ``--window`` in flight (twin_throughput.py's publisher): the baseline, what MQTT mappers get;
* **dmi**: ``--window`` concurrent ``ReportDeviceStatus`` calls on one connection to the agent's
  DMI socket, one property each;
* **dmi, dial per call**: the same, each call on a fresh connection, as the framework's
  ``grpcclient`` makes them.

For each phase: reports/s the sender got answered, values/s that reached the subscriber in a twin
document (a document may carry several values of a device: coalesced reports), the share of reports
replaced by a newer value before the twin took them, and p50/p99 from sending a value to receiving
its document. Each value is its send time (``time.monotonic_ns()``), so the subscriber needs no
second channel. Broker, agent (twin + DMI server), subscriber and sender are four processes.

Run: ``.venv/bin/python bench/dmi.py [--devices 1000] [--properties 4] [--seconds 5] [--window 64]``.
Only 127.0.0.1 and a temporary folder are used; everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import math
import multiprocessing as mp
import os
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path

import grpc
from _common import LOOPBACK, broker_process, cpu_seconds, machine, machine_cpu_seconds, percentile, table
from twin_throughput import (
    NAMESPACE,
    NODE,
    TWIN,
    Publisher,
    _settle,
    _stop_child,
    _wait_ready,
    bench_manifests,
    device_name,
    property_name,
    subscriber_process,
)

from edgemqtt.client import BrokerAddress, MqttClient
from node_agent.dmi.server import DmiServer, DmiSettings
from node_agent.dmi.v1beta1 import api_pb2 as pb
from node_agent.dmi.v1beta1 import manager_service_pb2_grpc
from twin.manifests import Manifests
from twin.models import ProtocolConfig
from twin.service import TwinService
from twin.store import TwinStore

PROTOCOL = "bench"
MQTT, DMI, DMI_DIAL = "mqtt", "dmi", "dmi, dial per call"


def dmi_manifests(devices: int, properties: int) -> Manifests:
    """twin_throughput's devices, of a protocol a DMI mapper registers."""
    manifests = bench_manifests(devices, properties)
    for device_id, device in manifests.devices.items():
        spec = device.spec.model_copy(update={"protocol": ProtocolConfig(protocolName=PROTOCOL)})
        manifests.devices[device_id] = device.model_copy(update={"spec": spec})
    return manifests


# -- the agent's process: twin service + DMI server -------------------------------------------------


def agent_process(port: int, devices: int, properties: int, folder: str, ready: Event, stop: Event) -> None:
    logging.basicConfig(level=logging.WARNING, format="agent: %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(port, devices, properties, Path(folder), ready, stop))


async def _serve(port: int, devices: int, properties: int, folder: Path, ready: Event, stop: Event) -> None:
    async with TwinStore(folder / "store") as store:
        service = TwinService(NODE, BrokerAddress(LOOPBACK, port), store)
        await service.start(dmi_manifests(devices, properties))
        dmi = DmiServer(service, DmiSettings(socket=folder / "dmi.sock", start_grace=3600))
        tasks = [asyncio.create_task(service.serve()), asyncio.create_task(dmi.run())]
        await dmi.ready.wait()
        profiler = cProfile.Profile() if os.environ.get("BENCH_PROFILE_AGENT") else None
        if profiler is not None:
            profiler.enable()
        ready.set()
        await asyncio.to_thread(stop.wait)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.environ["BENCH_PROFILE_AGENT"])
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await service.stop()


# -- the sender (this process) ----------------------------------------------------------------------


@dataclass
class Phase:
    kind: str
    start_ns: int = 0
    end_ns: int = 0
    sent: int = 0  # reports answered within the window
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class DmiSender:
    """Sends one-property reports for device ``i % N``, property ``(i // N) % M``."""

    def __init__(self, socket: Path, devices: int, properties: int) -> None:
        self.target = f"unix:{socket}"
        self.devices = devices
        self.properties = properties
        self.sent = 0
        self._next = 0

    def request(self) -> pb.ReportDeviceStatusRequest:
        i = self._next
        self._next += 1
        twin = pb.Twin(
            propertyName=property_name((i // self.devices) % self.properties),
            observedDesired=pb.TwinProperty(),
            reported=pb.TwinProperty(value=str(time.monotonic_ns())),
        )
        return pb.ReportDeviceStatusRequest(
            deviceName=device_name(i % self.devices),
            deviceNamespace=NAMESPACE,
            reportedDevice=pb.DeviceStatus(twins=[twin]),
        )

    async def register(self) -> None:
        info = pb.MapperInfo(name="bench-mapper", protocol=PROTOCOL, address=b"/nonexistent/bench.sock")
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = manager_service_pb2_grpc.DeviceManagerServiceStub(channel)
            await stub.MapperRegister(pb.MapperRegisterRequest(withData=True, mapper=info), timeout=30)

    async def saturate(self, until_ns: int, window: int, *, dial_per_call: bool) -> None:
        async def caller(stub: object) -> None:
            while time.monotonic_ns() < until_ns:
                if dial_per_call:
                    async with grpc.aio.insecure_channel(self.target) as fresh:
                        await manager_service_pb2_grpc.DeviceManagerServiceStub(fresh).ReportDeviceStatus(
                            self.request()
                        )
                else:
                    await stub.ReportDeviceStatus(self.request())  # type: ignore[attr-defined]
                self.sent += 1

        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = manager_service_pb2_grpc.DeviceManagerServiceStub(channel)
            await asyncio.gather(*(caller(stub) for _ in range(window)))


async def _phases(
    args: argparse.Namespace, port: int, socket: Path, counts: SynchronizedArray[int], pids: dict[str, int]
) -> list[Phase]:
    phases: list[Phase] = []
    dmi = DmiSender(socket, args.devices, args.properties)
    await dmi.register()
    async with MqttClient(BrokerAddress(LOOPBACK, port), client_id="bench-sender") as client:
        mqtt = Publisher(client, args.devices, args.properties, 1, counts)

        async def run(kind: str) -> None:
            await _settle(pids["agent"])
            phase = Phase(kind)
            phase.start_ns = time.monotonic_ns() + int(args.warmup * 1e9)
            phase.end_ns = phase.start_ns + int(args.seconds * 1e9)
            print(f"  {kind}: {args.warmup + args.seconds:.1f} s", flush=True)
            watcher = asyncio.create_task(_observe(phase, pids))
            if kind == MQTT:
                # Published within the window (each is answered by the twin's document).
                sender = asyncio.create_task(mqtt.saturate(TWIN, phase.end_ns, args.window))
                await asyncio.sleep(max(0.0, (phase.start_ns - time.monotonic_ns()) / 1e9))
                first = mqtt.sent[TWIN]
                await sender
                phase.sent = mqtt.sent[TWIN] - first
            else:
                task = asyncio.create_task(
                    dmi.saturate(phase.end_ns, args.window, dial_per_call=kind == DMI_DIAL)
                )
                await asyncio.sleep(max(0.0, (phase.start_ns - time.monotonic_ns()) / 1e9))
                first = dmi.sent
                await task
                phase.sent = dmi.sent - first
            await watcher
            await mqtt.drain(TWIN)
            phases.append(phase)

        for _ in range(args.rounds):
            for kind in (MQTT, DMI, DMI_DIAL):
                await run(kind)
    return phases


async def _observe(phase: Phase, pids: dict[str, int]) -> None:
    await asyncio.sleep(max(0.0, (phase.start_ns - time.monotonic_ns()) / 1e9))
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    everyone = machine_cpu_seconds()
    await asyncio.sleep(max(0.0, (phase.end_ns - time.monotonic_ns()) / 1e9))
    for name, pid in pids.items():
        phase.cpu[name] = (cpu_seconds(pid) - cpu[name]) / phase.seconds
    phase.cpu["others"] = max(
        0.0, (machine_cpu_seconds() - everyone) / phase.seconds - sum(phase.cpu.values())
    )


def measure(args: argparse.Namespace) -> tuple[list[Phase], array[int], array[int]]:
    ctx = mp.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="edgetwin-dmi-", dir="/tmp") as tmp,
        broker_process("mosquitto", Path(tmp)) as (port, broker),
    ):
        counts: SynchronizedArray[int] = ctx.RawArray("q", 2)
        agent_ready, agent_stop, sub_ready, sub_stop = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
        results, results_sender = ctx.Pipe(duplex=False)
        agent = ctx.Process(
            target=agent_process,
            args=(port, args.devices, args.properties, tmp, agent_ready, agent_stop),
            name="bench agent",
            daemon=True,
        )
        subscriber = ctx.Process(
            target=subscriber_process,
            args=(port, 1, counts, sub_ready, sub_stop, results_sender),
            name="bench subscriber",
            daemon=True,
        )
        agent.start()
        subscriber.start()
        received, sent = array("q"), array("q")
        try:
            _wait_ready(agent_ready, agent, "agent", timeout=120)
            _wait_ready(sub_ready, subscriber, "subscriber", timeout=30)
            print(f"agent up with {args.devices:,} devices, DMI on {tmp}/dmi.sock; measuring:", flush=True)
            pids = {
                "agent": agent.pid or 0,
                "broker": broker.pid,
                "sender": os.getpid(),
                "subscriber": subscriber.pid or 0,
            }
            phases = asyncio.run(_phases(args, port, Path(tmp) / "dmi.sock", counts, pids))
            sub_stop.set()
            if results.poll(30):
                received.frombytes(results.recv_bytes())
                sent.frombytes(results.recv_bytes())
                results.recv_bytes()
        finally:
            agent_stop.set()
            sub_stop.set()
            _stop_child(subscriber)
            _stop_child(agent)
    return phases, received, sent


def report(args: argparse.Namespace, phases: list[Phase], received: array[int], sent: array[int]) -> None:
    rows, rates = [], {}
    for kind in (MQTT, DMI, DMI_DIAL):
        mine = [p for p in phases if p.kind == kind]
        seconds = sum(p.seconds for p in mine)
        values, latencies = 0, []
        for r, s in zip(received, sent, strict=True):
            if any(p.start_ns <= r < p.end_ns for p in mine):
                values += 1
            if any(p.start_ns <= s < p.end_ns for p in mine):
                latencies.append((r - s) / 1e6)
        latencies.sort()
        answered = sum(p.sent for p in mine)
        rates[kind] = values / seconds
        coalesced = max(0.0, 1 - values / answered) if answered else math.nan
        cpu = sum(sum(v for n, v in p.cpu.items() if n != "others") * p.seconds for p in mine)
        rows.append(
            [
                kind,
                f"{answered / seconds:,.0f}",
                f"{values / seconds:,.0f}",
                "-" if kind == MQTT else f"{coalesced:.0%}",
                f"{percentile(latencies, 0.5):.2f}",
                f"{percentile(latencies, 0.99):.2f}",
                f"{cpu / values * 1e6:,.0f}" if values else "n/a",
                f"{sum(p.cpu.get('others', 0.0) for p in mine) / len(mine):.2f}",
            ]
        )
    print()
    print(
        f"{args.devices:,} devices x {args.properties} properties, mosquitto, QoS 1 on MQTT, "
        f"window {args.window}; "
        f"{args.seconds:g} s per phase x {args.rounds} rounds, each after {args.warmup:g} s warm-up"
    )
    print(f"machine: {machine()}")
    print()
    print(
        table(
            [
                "path",
                "reports/s answered",
                "values/s in documents",
                "coalesced",
                "p50 ms",
                "p99 ms",
                "CPU µs/value",
                "others",
            ],
            rows,
        )
    )
    print()
    print("CPU use by process in each phase (1.00 = one core busy):")
    names = ["sender", "broker", "agent", "subscriber", "others"]
    print(table(["phase", *names], [[p.kind, *(f"{p.cpu.get(n, 0.0):.2f}" for n in names)] for p in phases]))
    print()
    print(
        f"DMI / MQTT values into the twin: {rates[DMI] / rates[MQTT]:.0%} (one connection), "
        f"{rates[DMI_DIAL] / rates[MQTT]:.0%} (a connection per call)"
    )
    print(
        "coalesced: reports answered whose value was replaced by a newer one before the twin took it; "
        "others: CPU the rest of the machine used (1.00 = one core)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000, help="number of devices (default 1000)")
    parser.add_argument("--properties", type=int, default=4, help="properties per device (default 4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each phase")
    parser.add_argument("--window", type=int, default=64, help="reports in flight (default 64)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of the three phases (default 1)")
    args = parser.parse_args()
    if min(args.devices, args.properties, args.window, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--devices, --properties, --seconds, --window and --rounds must be positive")
    report(args, *measure(args))


if __name__ == "__main__":
    main()
