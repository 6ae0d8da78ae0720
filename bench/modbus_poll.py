"""Modbus polling: what the mapper costs over raw pymodbus, and what block reads buy.

Starts the sample Modbus simulator in its own process (as a PLC would be), then reads the same 40
adjacent holding registers four ways, in the same run, each for ``--seconds`` and ``--rounds`` times
(best round kept):

  raw one-by-one     pymodbus ``read_holding_registers(i, count=1)`` for each register
  mapper one-by-one  ``ModbusMapper.read`` for each of 40 properties (bus lock, decoding, errors)
  raw block          one ``read_holding_registers(0, count=40)``
  mapper block       ``ModbusMapper.read_many`` of the 40 properties (planned into one request)

and, with ``--runner``, the whole SDK: twin service + mapper runner polling the 40 properties as
fast as a 1 ms collectCycle allows, counting properties read per second at the simulator.

Prints figures; no thresholds (speed is measured here, correctness in tests/).

    .venv/bin/python bench/modbus_poll.py [--seconds 2] [--rounds 3] [--runner]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from mappers.binding import bind_device
from mappers.bus import Buses
from mappers.modbus.plugin import ModbusMapper
from twin.models import Device, DeviceModel

PROPS = 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manifests(port: int, collect_ms: int = 1000) -> tuple[Device, DeviceModel]:
    model = DeviceModel.model_validate(
        {
            "metadata": {"name": "bench-model"},
            "spec": {
                "protocol": "modbus",
                "properties": [{"name": f"r{i}", "type": "INT"} for i in range(PROPS)],
            },
        }
    )
    device = Device.model_validate(
        {
            "metadata": {"name": "bench-plc"},
            "spec": {
                "deviceModelRef": {"name": "bench-model"},
                "nodeName": "bench-node",
                "protocol": {
                    "protocolName": "modbus",
                    "configData": {"ip": "127.0.0.1", "port": port, "slaveID": 1},
                },
                "properties": [
                    {
                        "name": f"r{i}",
                        "collectCycle": collect_ms,
                        "visitors": {
                            "protocolName": "modbus",
                            "configData": {"register": "HoldingRegister", "offset": i, "limit": 1},
                        },
                    }
                    for i in range(PROPS)
                ],
            },
        }
    )
    return device, model


async def rate(action: Callable[[], Awaitable[int]], seconds: float) -> tuple[float, float]:
    """Properties per second, and this process's CPU µs per property (``action`` says how many it read).

    CPU time is the steadier figure on a shared machine: other people's load slows the wall clock
    of both the client and the simulator, but not the CPU this process spends per property.
    """
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        done += await action()
    elapsed = time.perf_counter() - start
    return done / elapsed, (time.process_time() - cpu) / done * 1e6


async def wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"simulator did not listen on {port}")


async def direct(port: int, seconds: float, rounds: int) -> dict[str, tuple[float, float]]:
    device, model = manifests(port)
    bound = bind_device(device, model, ModbusMapper).device
    props = list(bound.properties)
    client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
    await client.connect()

    async def raw_single() -> int:
        for i in range(PROPS):
            await client.read_holding_registers(i, count=1, device_id=1)
        return PROPS

    async def raw_block() -> int:
        await client.read_holding_registers(0, count=PROPS, device_id=1)
        return PROPS

    best: dict[str, tuple[float, float]] = {}
    async with ModbusMapper(bound, Buses()) as mapper:

        async def mapper_single() -> int:
            for prop in props:
                await mapper.read(prop)
            return PROPS

        async def mapper_block() -> int:
            await mapper.read_many(props)
            return PROPS

        variants = {
            "raw one-by-one": raw_single,
            "mapper one-by-one": mapper_single,
            "raw block": raw_block,
            "mapper block": mapper_block,
        }
        for _ in range(rounds):
            for name, action in variants.items():
                speed, cpu = await rate(action, seconds)
                old_speed, old_cpu = best.get(name, (0.0, float("inf")))
                best[name] = (max(speed, old_speed), min(cpu, old_cpu))
    client.close()
    return best


class _Counting(ModbusMapper):
    """The Modbus plugin, counting the properties the runner asks it to read."""

    reads = 0

    async def read_many(self, props: Any) -> Any:
        _Counting.reads += len(props)
        return await super().read_many(props)


async def through_runner(port: int, seconds: float) -> float:
    """The whole SDK: membership, poll loop, reporting to the twin; properties read per second."""
    from edgemqtt.broker import embedded_broker
    from mappers.registry import Registry
    from mappers.runner import MapperRunner
    from mappers.settings import RunnerSettings
    from twin.manifests import Manifests
    from twin.service import TwinService
    from twin.store import TwinStore

    device, model = manifests(port, collect_ms=1)
    defs = Manifests(models={model.key: model}, devices={device.id: device})
    with tempfile.TemporaryDirectory() as data:
        async with embedded_broker("127.0.0.1", free_port()) as broker, TwinStore(Path(data)) as store:
            twin = TwinService("bench-node", broker, store)
            await twin.start(defs)
            serving = asyncio.create_task(twin.serve(), name="twin service")
            runner = MapperRunner(
                "bench-node",
                broker,
                protocols=["modbus"],
                registry=Registry(plugins={"modbus": _Counting}),
                settings=RunnerSettings(),
            )
            task = asyncio.create_task(runner.run(), name="bench runner")
            try:
                await asyncio.wait_for(runner.ready.wait(), 10)
                await asyncio.sleep(0.5)  # connected and polling
                worker = runner.workers[device.id]
                before = _Counting.reads
                start = time.perf_counter()
                await asyncio.sleep(seconds)
                elapsed = time.perf_counter() - start
                reads = _Counting.reads - before
                assert worker.state == "online", worker.state
                return reads / elapsed
            finally:
                for running in (task, serving):
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await running
                await twin.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per variant (best kept)")
    parser.add_argument("--runner", action="store_true", help="also measure the whole SDK with the twin")
    args = parser.parse_args()
    port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "mappers.modbus.simulator", "--port", str(port), "--drift", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def run() -> tuple[dict[str, tuple[float, float]], float | None]:
            await wait_listening(port)
            figures = await direct(port, args.seconds, args.rounds)
            runner = await through_runner(port, args.seconds) if args.runner else None
            return figures, runner

        figures, runner = asyncio.run(run())
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    print(
        f"Modbus TCP, simulator in its own process, {PROPS} adjacent holding registers, best of {args.rounds}"
    )
    print(f"{'variant':<20} {'properties/s':>13} {'CPU µs/property':>16}")
    for name, (speed, cpu) in figures.items():
        print(f"{name:<20} {speed:>13,.0f} {cpu:>16.1f}")

    def overhead(mapper: str, raw: str) -> str:
        speed = 1 - figures[mapper][0] / figures[raw][0]
        cpu = figures[mapper][1] / figures[raw][1] - 1
        return f"{speed:+.1%} throughput, {cpu:+.1%} CPU"

    print(f"mapper overhead, one-by-one: {overhead('mapper one-by-one', 'raw one-by-one')}")
    print(f"mapper overhead, block:      {overhead('mapper block', 'raw block')}")
    speedup = figures["mapper block"][0] / figures["mapper one-by-one"][0]
    print(f"block read speed-up through the mapper: {speedup:.1f}x")
    if runner is not None:
        print(f"whole SDK (runner + twin, collectCycle 1 ms): {runner:,.0f} properties/s")


if __name__ == "__main__":
    main()
