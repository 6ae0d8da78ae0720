"""How many reported updates per second the twin service turns into documents, and how fast.

Why: issue 2 asks for the twin's throughput and latency *as a fraction of what the broker alone
does on the same machine*, because absolute figures say little across machines. So one run measures
both, with the same processes and the same payloads:

* **twin**: a publisher sends reported updates (``$hw/events/device/{ns}/{name}/twin/update``,
  one property per message, the value varying) for N devices x M properties; the twin service, in
  its own process with a store in a temporary folder, answers each with a result and a document;
  a subscriber process receives the documents (``…/twin/update/document``);
* **raw**: the same publisher sends the same payloads to a plain topic (``bench/raw/{ns}/{name}``)
  and the same subscriber receives them straight from the broker.

For each path it measures (a) the saturated rate, with at most ``--window`` messages in flight so
that nothing just queues up, and (b) p50/p99 publish→receive latency with the publisher paced at
half of the twin's saturated rate (the same absolute rate for both paths). Each message carries its
send time (``time.monotonic_ns()``, one clock for all processes on Linux) as its value, so the
subscriber computes latency without a second channel.

Publisher (this process), broker, twin and subscriber each run in their own process: on one event
loop they would take turns on one core and measure Python's scheduler rather than the twin. The
twin does more broker work per update than raw pass-through (see the printed note); that is part
of what is measured, not corrected for.

Run: ``.venv/bin/python bench/twin_throughput.py [--devices 1000] [--properties 4] [--seconds 6]
[--broker mosquitto|embedded]``. Only 127.0.0.1 is used; every process and folder it makes is
removed at the end.
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
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event
from pathlib import Path

import orjson
from _common import LOOPBACK, broker_process, cpu_seconds, machine, machine_cpu_seconds, percentile, table

from edgemqtt.client import BrokerAddress, MqttClient
from twin.manifests import Manifests
from twin.models import (
    AccessMode,
    Device,
    DeviceModel,
    DeviceModelSpec,
    DeviceProperty,
    DeviceSpec,
    ModelProperty,
    ModelRef,
    ObjectMeta,
    PropertyType,
)
from twin.service import TwinService
from twin.store import TwinStore
from twin.topics import DEVICE_PREFIX

NAMESPACE = "bench"
NODE = "bench-node"
MODEL = "bench-sensor"
RAW_PREFIX = "bench/raw/"
RAW, TWIN = 0, 1
KINDS = {RAW: "raw pass-through", TWIN: "twin"}
TARGET_RATIO = 0.5
TARGET_P99_MS = 5.0

log = logging.getLogger("bench.twin_throughput")


# -- what is served ---------------------------------------------------------------------------------


def device_name(index: int) -> str:
    return f"dev-{index:05d}"


def property_name(index: int) -> str:
    return f"p{index}"


def bench_manifests(devices: int, properties: int) -> Manifests:
    """One DeviceModel with ``properties`` ReadOnly INT properties, and ``devices`` Devices of it."""
    names = [property_name(i) for i in range(properties)]
    model = DeviceModel(
        metadata=ObjectMeta(name=MODEL, namespace=NAMESPACE),
        spec=DeviceModelSpec(
            protocol="virtual",
            properties=[
                ModelProperty(name=n, type=PropertyType.INT, accessMode=AccessMode.READ_ONLY) for n in names
            ],
        ),
    )
    result = Manifests(models={model.key: model})
    for i in range(devices):
        device = Device(
            metadata=ObjectMeta(name=device_name(i), namespace=NAMESPACE),
            spec=DeviceSpec(
                deviceModelRef=ModelRef(name=MODEL),
                nodeName=NODE,
                properties=[DeviceProperty(name=n) for n in names],
            ),
        )
        result.devices[device.id] = device
    return result


# -- the twin's process -----------------------------------------------------------------------------


def twin_process(
    port: int, devices: int, properties: int, data_dir: str, ready: Event, stop: Event, profile: str
) -> None:
    logging.basicConfig(level=logging.WARNING, format="twin: %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve_twin(port, devices, properties, Path(data_dir), ready, stop, profile))


async def _serve_twin(
    port: int, devices: int, properties: int, data_dir: Path, ready: Event, stop: Event, profile: str
) -> None:
    manifests = bench_manifests(devices, properties)
    async with TwinStore(data_dir) as store:
        service = TwinService(NODE, BrokerAddress(LOOPBACK, port), store)
        await service.start(manifests)
        serving = asyncio.create_task(service.serve(), name="twin service")
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        ready.set()
        await asyncio.to_thread(stop.wait)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await service.stop()


# -- the subscriber's process ----------------------------------------------------------------------


def subscriber_process(
    port: int, qos: int, counts: SynchronizedArray[int], ready: Event, stop: Event, results: Connection
) -> None:
    logging.basicConfig(level=logging.WARNING, format="subscriber: %(levelname)s %(name)s: %(message)s")
    received, sent, kinds = asyncio.run(_subscribe(port, qos, counts, ready, stop))
    results.send_bytes(received.tobytes())
    results.send_bytes(sent.tobytes())
    results.send_bytes(kinds.tobytes())
    results.close()


async def _subscribe(
    port: int, qos: int, counts: SynchronizedArray[int], ready: Event, stop: Event
) -> tuple[array[int], array[int], array[int]]:
    received, sent, kinds = array("q"), array("q"), array("b")

    def on_message(topic: str, payload: bytes) -> None:
        now = time.monotonic_ns()
        body = orjson.loads(payload)
        if topic.startswith(DEVICE_PREFIX):
            kind = TWIN
            stamps = [int(p["current"]["actual"]["value"]) for p in body["twin"].values()]
        else:
            kind = RAW
            stamps = [int(p["actual"]["value"]) for p in body["twin"].values()]
        for stamp in stamps:
            received.append(now)
            sent.append(stamp)
            kinds.append(kind)
        counts[kind] += 1

    client = MqttClient(
        BrokerAddress(LOOPBACK, port),
        client_id="bench-subscriber",
        on_message=lambda m: on_message(m.topic, m.payload),
    )
    async with client:
        await client.subscribe(
            f"{DEVICE_PREFIX}{NAMESPACE}/+/twin/update/document", f"{RAW_PREFIX}#", qos=qos
        )
        ready.set()
        await asyncio.to_thread(stop.wait)
    return received, sent, kinds


# -- the publisher (this process) -------------------------------------------------------------------


@dataclass
class Phase:
    kind: int
    paced_rate: float | None  # None: saturated
    start_ns: int = 0  # the measured window, after the warm-up
    end_ns: int = 0
    received: int = 0  # messages that reached the subscriber within the window
    lost: int = 0  # sent in the phase but not received after draining
    cpu: dict[str, float] = field(default_factory=dict)  # CPU share of each process in the window

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def rate(self) -> float:
        return self.received / self.seconds

    @property
    def label(self) -> str:
        return f"{KINDS[self.kind]}, " + (
            "saturated" if self.paced_rate is None else f"paced at {self.paced_rate:,.0f}/s"
        )


class Publisher:
    """Sends updates for device ``i % N``, property ``(i // N) % M``, on the twin or the raw topic."""

    def __init__(
        self, client: MqttClient, devices: int, properties: int, qos: int, counts: SynchronizedArray[int]
    ) -> None:
        self.client = client
        self.qos = qos
        self.counts = counts
        self.devices = devices
        self.properties = properties
        names = [f"{NAMESPACE}/{device_name(i)}" for i in range(devices)]
        self.topics = {
            TWIN: [f"{DEVICE_PREFIX}{n}/twin/update" for n in names],
            RAW: [f"{RAW_PREFIX}{n}" for n in names],
        }
        self.heads = [
            b'{"event_id":"","timestamp":0,"twin":{"' + property_name(p).encode() + b'":{"actual":{"value":"'
            for p in range(properties)
        ]
        self.tail = b'"},"metadata":{"type":"Updated"}}}}'
        self.sent = {RAW: 0, TWIN: 0}
        self._next = 0

    def send(self, kind: int) -> None:
        i = self._next
        self._next += 1
        payload = b"".join(
            (self.heads[(i // self.devices) % self.properties], b"%d" % time.monotonic_ns(), self.tail)
        )
        self.client.publish(self.topics[kind][i % self.devices], payload, qos=self.qos)
        self.sent[kind] += 1

    def in_flight(self, kind: int) -> int:
        return self.sent[kind] - self.counts[kind]

    async def saturate(self, kind: int, until_ns: int, window: int) -> None:
        while time.monotonic_ns() < until_ns:
            for _ in range(window - self.in_flight(kind)):
                self.send(kind)
            # Polling the subscriber's counter every millisecond keeps the window full without
            # spinning a core that the broker and the twin need.
            await asyncio.sleep(0.001)

    async def pace(self, kind: int, rate: float, until_ns: int) -> None:
        start = time.monotonic_ns()
        interval = 1e9 / rate
        sent = 0
        while (now := time.monotonic_ns()) < until_ns:
            due = int((now - start) / interval) + 1
            while sent < due:
                self.send(kind)
                sent += 1
            await asyncio.sleep(max(0.0, (start + sent * interval - time.monotonic_ns()) / 1e9))

    async def drain(self, kind: int, timeout: float = 15.0) -> int:
        """Wait until everything sent has arrived; the number still missing after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.in_flight(kind) > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return self.in_flight(kind)


async def _sleep_until(deadline_ns: int) -> None:
    await asyncio.sleep(max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9))


async def _settle(pid: int, timeout: float = 5.0) -> float:
    """Wait until ``pid`` is idle (its write-behind flushes done); the seconds waited.

    After a saturated twin phase the store's flusher may still be writing; it must not run into
    the next phase and take CPU from the raw path (nor be charged to it).
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.25)
        if cpu_seconds(pid) - before <= 0.02:  # two clock ticks: idle but for timers
            break
    return time.monotonic() - start


async def _observe(phase: Phase, counts: SynchronizedArray[int], pids: dict[str, int]) -> None:
    """Count arrivals and CPU time between the phase's window edges."""
    await _sleep_until(phase.start_ns)
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    everyone = machine_cpu_seconds()
    received, phase.start_ns = counts[phase.kind], time.monotonic_ns()
    await _sleep_until(phase.end_ns)
    phase.received, phase.end_ns = counts[phase.kind] - received, time.monotonic_ns()
    for name, pid in pids.items():
        phase.cpu[name] = (cpu_seconds(pid) - cpu[name]) / phase.seconds
    # Other sessions on a shared machine skew the figures; show how much CPU they took meanwhile.
    ours = sum(phase.cpu.values())
    phase.cpu["others"] = max(0.0, (machine_cpu_seconds() - everyone) / phase.seconds - ours)


async def publish_phases(
    args: argparse.Namespace, port: int, counts: SynchronizedArray[int], pids: dict[str, int]
) -> list[Phase]:
    """Twin and raw saturated, alternating ``--rounds`` times; then both paced at half the twin's rate.

    Alternating spreads any drift of the machine (other processes, CPU frequency) over both paths
    instead of charging it to one.
    """
    phases: list[Phase] = []
    async with MqttClient(BrokerAddress(LOOPBACK, port), client_id="bench-publisher") as client:
        pub = Publisher(client, args.devices, args.properties, args.qos, counts)

        async def run_phase(kind: int, rate: float | None, seconds: float) -> Phase:
            waited = await _settle(pids["twin"])
            if waited > 1:
                print(f"  (waited {waited:.1f} s for the twin to finish writing behind)", flush=True)
            phase = Phase(kind, rate)
            phase.start_ns = time.monotonic_ns() + int(args.warmup * 1e9)
            phase.end_ns = phase.start_ns + int(seconds * 1e9)
            print(f"  {phase.label}: {args.warmup + seconds:.1f} s", flush=True)
            observer = asyncio.create_task(_observe(phase, counts, pids))
            if rate is None:
                await pub.saturate(kind, phase.end_ns, args.window)
            else:
                await pub.pace(kind, rate, phase.end_ns)
            await observer
            phase.lost = await pub.drain(kind)
            phases.append(phase)
            return phase

        for _ in range(args.rounds):
            await run_phase(TWIN, None, args.seconds / args.rounds)
            await run_phase(RAW, None, args.seconds / args.rounds)
        half = max(1.0, saturated_rate(phases, TWIN) / 2)
        await run_phase(TWIN, half, args.seconds)
        await run_phase(RAW, half, args.seconds)
    return phases


def saturated_rate(phases: list[Phase], kind: int) -> float:
    windows = [p for p in phases if p.kind == kind and p.paced_rate is None]
    seconds = sum(p.seconds for p in windows)
    return sum(p.received for p in windows) / seconds if seconds else math.nan


# -- orchestration -------------------------------------------------------------------------------


@dataclass
class Records:
    """What the subscriber saw: arrival time, send time and kind of every message."""

    received: array[int]
    sent: array[int]
    kinds: array[int]

    def latencies_ms(self, phase: Phase) -> list[float]:
        """Publish→receive latency of the phase's messages sent within its window, sorted."""
        out = [
            (r - s) / 1e6
            for r, s, k in zip(self.received, self.sent, self.kinds, strict=True)
            if k == phase.kind and phase.start_ns <= s < phase.end_ns
        ]
        out.sort()
        return out


def _wait_ready(event: Event, proc: BaseProcess, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not event.wait(0.1):
        if not proc.is_alive():
            raise SystemExit(f"the {what} process exited with {proc.exitcode} before it was ready")
        if time.monotonic() > deadline:
            raise SystemExit(f"the {what} process was not ready within {timeout:.0f} s")


def _stop_child(proc: BaseProcess, timeout: float = 15.0) -> None:
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


def measure(args: argparse.Namespace) -> tuple[list[Phase], Records, float]:
    ctx = mp.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="edgetwin-bench-") as tmp,
        broker_process(args.broker, Path(tmp)) as (port, broker),
    ):
        counts: SynchronizedArray[int] = ctx.RawArray("q", 2)
        twin_ready, twin_stop = ctx.Event(), ctx.Event()
        sub_ready, sub_stop = ctx.Event(), ctx.Event()
        results, results_sender = ctx.Pipe(duplex=False)
        profile = str(Path(args.profile_twin).resolve()) if args.profile_twin else ""
        twin = ctx.Process(
            target=twin_process,
            args=(
                port,
                args.devices,
                args.properties,
                str(Path(tmp) / "store"),
                twin_ready,
                twin_stop,
                profile,
            ),
            name="bench twin",
            daemon=True,  # never outlive this process, whatever happens to it
        )
        subscriber = ctx.Process(
            target=subscriber_process,
            args=(port, args.qos, counts, sub_ready, sub_stop, results_sender),
            name="bench subscriber",
            daemon=True,
        )
        started = time.monotonic()
        twin.start()
        subscriber.start()
        try:
            _wait_ready(twin_ready, twin, "twin", timeout=120)
            _wait_ready(sub_ready, subscriber, "subscriber", timeout=30)
            startup = time.monotonic() - started
            print(f"twin service up with {args.devices:,} devices in {startup:.1f} s; measuring:", flush=True)
            pids = {
                "twin": twin.pid or 0,
                "broker": broker.pid,
                "publisher": os.getpid(),
                "subscriber": subscriber.pid or 0,
            }
            phases = asyncio.run(publish_phases(args, port, counts, pids))
            sub_stop.set()
            records = Records(array("q"), array("q"), array("b"))
            if results.poll(30):
                records.received.frombytes(results.recv_bytes())
                records.sent.frombytes(results.recv_bytes())
                records.kinds.frombytes(results.recv_bytes())
        finally:
            twin_stop.set()
            sub_stop.set()
            _stop_child(subscriber)
            _stop_child(twin)
    return phases, records, startup


# -- report -------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(args: argparse.Namespace, phases: list[Phase], records: Records) -> None:
    sat = {kind: saturated_rate(phases, kind) for kind in (RAW, TWIN)}
    paced = {p.kind: p for p in phases if p.paced_rate is not None}
    stats: dict[int, tuple[float, float, float, int]] = {}
    for kind, phase in paced.items():
        lat = records.latencies_ms(phase)
        stats[kind] = (percentile(lat, 0.5), percentile(lat, 0.99), lat[-1] if lat else math.nan, len(lat))
    half = paced[TWIN].paced_rate or 0.0
    rows = []
    for kind in (RAW, TWIN):
        p50, p99, worst, count = stats[kind]
        rows.append([KINDS[kind], f"{sat[kind]:,.0f}", _ms(p50), _ms(p99), _ms(worst), f"{count:,}"])
    ratio = sat[TWIN] / sat[RAW] if sat[RAW] else math.nan
    p99_ratio = stats[TWIN][1] / stats[RAW][1] if stats[RAW][1] else math.nan
    rows.append(["twin / raw", f"{ratio:.0%}", "", f"{p99_ratio:.1f}x", "", ""])
    print()
    print(
        f"{args.devices:,} devices x {args.properties} properties, broker {args.broker}, QoS {args.qos}, "
        f"in-flight window {args.window}; {args.seconds:g} s measured per path and load "
        f"(saturated in {args.rounds} alternating rounds), each phase after {args.warmup:g} s warm-up"
    )
    print(f"machine: {machine()}")
    print()
    print(
        table(
            [
                "path",
                "saturated msg/s",
                f"p50 ms @ {half:,.0f}/s",
                f"p99 ms @ {half:,.0f}/s",
                "max ms",
                "samples",
            ],
            rows,
        )
    )
    print()
    print(
        f"target: twin ≥ {TARGET_RATIO:.0%} of raw pass-through: {ratio:.0%} "
        f"({_verdict(ratio >= TARGET_RATIO)}); "
        f"twin p99 < {TARGET_P99_MS:.0f} ms at half load: {_ms(stats[TWIN][1])} ms "
        f"({_verdict(stats[TWIN][1] < TARGET_P99_MS)})"
    )
    print()
    names = ["publisher", "broker", "twin", "subscriber", "others"]
    print("CPU use in each measured window (1.00 = one core busy; others = the rest of the machine):")
    rows = []
    for p in phases:
        ours = sum(v for n, v in p.cpu.items() if n != "others")
        per_message = ours / p.rate * 1e6 if p.rate else math.nan
        shares = [f"{p.cpu.get(n, 0.0):.2f}" for n in names]
        rows.append([p.label, f"{p.rate:,.0f}", *shares, f"{per_message:,.0f}"])
    print(table(["phase", "msg/s", *names, "CPU µs/msg"], rows))
    print(
        "CPU µs/msg = CPU time of publisher, broker, twin and subscriber together per message received; "
        "it depends less than msg/s on what else the machine runs."
    )
    lost = sum(p.lost for p in phases)
    if lost:
        print(f"\nWARNING: {lost} messages did not arrive within 15 s after their phase")
    print()
    print(
        f"Devices live in namespace {NAMESPACE!r}, not 'default': for a 'default' device the twin also "
        "publishes each document on the legacy bare-name topic (DESIGN.md §4), which would double its "
        "outgoing traffic and count every update twice."
    )
    print(
        "Per update the broker handles 1 PUBLISH in and 1 out on the raw path, but 3 in (update, result, "
        "document) and 2 out (update to the twin, document to the subscriber) on the twin path, plus a "
        "PUBACK for each at QoS 1: the ratio compares the twin's whole round trip with a single hop."
    )
    if args.profile_twin:
        print(
            f"twin profile (all phases) written to {args.profile_twin}: python -m pstats {args.profile_twin}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--devices", type=int, default=1000, help="number of devices (default 1000)")
    parser.add_argument("--properties", type=int, default=4, help="properties per device (default 4)")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase (default 6)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each phase (default 1)"
    )
    parser.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    parser.add_argument(
        "--window", type=int, default=200, help="max messages in flight when saturated (default 200)"
    )
    parser.add_argument(
        "--qos", type=int, choices=(0, 1), default=1, help="publisher and subscriber QoS (default 1)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating twin/raw saturated rounds (default 2)"
    )
    parser.add_argument("--profile-twin", metavar="FILE", help="write a cProfile of the twin process to FILE")
    args = parser.parse_args()
    if min(args.devices, args.properties, args.window, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--devices, --properties, --seconds, --window and --rounds must be positive")
    phases, records, _ = measure(args)
    report(args, phases, records)


if __name__ == "__main__":
    main()
