"""``edgetwin up``: the whole stack on one machine, on embedded defaults (what ``make run`` starts).

Today: the embedded MQTT broker and the twin service of node ``edge-node-1`` with the sample
devices of ``crds/samples``. Each piece can also run on its own (``edgetwin broker``,
``edgetwin node``); this command only wires them together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path

from edgetwin.settings import DEFAULT_NODE, SAMPLES, default_data_dir
from twin.broker import embedded_broker
from twin.manifests import load_manifests
from twin.mqtt import BrokerAddress
from twin.service import TwinService
from twin.store import TwinStore


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("up", help="run the whole stack on this machine with simulated devices")
    parser.add_argument(
        "--data-dir", type=Path, default=default_data_dir(), help="state folder (default .edgetwin)"
    )
    parser.add_argument("--node", default=DEFAULT_NODE, help="the edge node's name (default %(default)s)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (default 1883)")
    parser.add_argument(
        "--broker",
        default=None,
        help="use this broker (mqtt://HOST:PORT) instead of starting the embedded one",
    )
    parser.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=[SAMPLES],
        help="Device/DeviceModel YAML files or folders (default: crds/samples)",
    )
    parser.set_defaults(run=run)


def _banner(broker: BrokerAddress, service: TwinService, data_dir: Path) -> str:
    devices = sorted(service.devices)
    example = next(
        (d for d in devices if d.endswith("/modbus-thermostat")), devices[0] if devices else "DEVICE"
    )
    flag = "" if broker.port == 1883 and broker.host == "127.0.0.1" else f" --broker {broker.url}"
    lines = [
        "edgetwin is up.",
        f"  MQTT broker   {broker.url}",
        f"  node          {service.node} ({len(devices)} devices; state in {data_dir})",
        "  devices       " + ", ".join(devices),
        "",
        "Try, in another terminal (with .venv/bin on PATH):",
        f"  edgetwin twin get {example}{flag}",
        f"  edgetwin twin set {example} PROPERTY VALUE{flag}",
        f"  edgetwin twin watch{flag}",
        "KubeEdge MQTT apps and mappers connect to the same broker and topics ($hw/events/device/...).",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.devices)
    data_dir: Path = args.data_dir
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            broker = BrokerAddress.parse(args.broker)
        else:
            broker = await stack.enter_async_context(embedded_broker("127.0.0.1", args.mqtt_port))
        store = await stack.enter_async_context(TwinStore(data_dir / "nodes" / args.node))
        service = TwinService(args.node, broker, store)
        await service.start(manifests)
        stack.push_async_callback(service.stop)
        print(_banner(broker, service, data_dir), flush=True)
        await asyncio.Event().wait()
    return 0
