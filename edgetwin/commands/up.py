"""``edgetwin up``: the whole stack on one machine, on embedded defaults (what ``make run`` starts).

It starts, in one process: the embedded MQTT broker, the embedded Kubernetes API server with the
Device CRDs, a simulated Modbus PLC where ``crds/samples/modbus-tcp.yaml`` expects one, the twin
service of node ``edge-node-1`` with the sample devices, and the installed mappers. Each piece also
runs on its own (``edgetwin broker``, ``apiserver``, ``node``, ``mapper run``); this command only
wires them together.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from edgemqtt.broker import embedded_broker
from edgemqtt.client import BrokerAddress
from edgemqtt.errors import BrokerUnavailable
from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._stop import run_until_stopped
from edgetwin.settings import CRDS, DEFAULT_NODE, SAMPLES, default_data_dir
from node_agent import Gateway, GatewaySettings
from twin.errors import TemporaryError
from twin.manifests import load_manifests
from twin.service import TwinService

# Where crds/samples/modbus-tcp.yaml and opcua.yaml point their devices.
SAMPLE_MODBUS_PORT = 5020
SAMPLE_OPCUA_PORT = 4840


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("up", help="run the whole stack on this machine with simulated devices")
    parser.add_argument(
        "--data-dir", type=Path, default=default_data_dir(), help="state folder (default .edgetwin)"
    )
    parser.add_argument("--node", default=DEFAULT_NODE, help="the edge node's name (default %(default)s)")
    parser.add_argument("--mqtt-port", type=int, default=1883, help="embedded broker port (default 1883)")
    parser.add_argument(
        "--apiserver-port", type=int, default=6443, help="embedded API server port (default 6443)"
    )
    add_broker_options(
        parser,
        required_default=False,
        help="use this broker (mqtt[s]://[USER:PASSWORD@]HOST:PORT) instead of starting the embedded one",
    )
    parser.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=[SAMPLES],
        help="Device/DeviceModel YAML files or folders (default: crds/samples)",
    )
    parser.add_argument("--no-apiserver", action="store_true", help="do not start the embedded API server")
    parser.add_argument("--no-mappers", action="store_true", help="do not run mappers or simulated devices")
    parser.set_defaults(run=run)


def _banner(
    broker: BrokerAddress, service: TwinService, data_dir: Path, kubeconfig: Path | None, mappers: bool
) -> str:
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
    ]
    if mappers:
        lines.append(
            f"  mappers       in-process; simulated devices: a Modbus PLC on 127.0.0.1:{SAMPLE_MODBUS_PORT}, "
            f"an OPC UA boiler on 127.0.0.1:{SAMPLE_OPCUA_PORT}, a BLE thermometer, GPIO mock pins"
        )
    if kubeconfig is not None:
        lines.append(f"  API server    kubeconfig {kubeconfig}")
    lines += [
        "",
        "Try, in another terminal (after `. .venv/bin/activate`):",
        f"  edgetwin twin get {example}{flag}",
        f"  edgetwin twin set {example} setpoint 22{flag}",
        f"  edgetwin twin watch{flag}",
    ]
    if kubeconfig is not None:
        lines.append(f"  export KUBECONFIG={kubeconfig}")
        lines.append("  kubectl apply -f crds/samples/ && kubectl get devices")
    lines += [
        "KubeEdge MQTT apps and mappers connect to the same broker and topics ($hw/events/device/...).",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _check_free(what: str, port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise TemporaryError(f"{what} needs 127.0.0.1:{port}, which is in use ({exc.strerror})") from exc


@contextlib.asynccontextmanager
async def _background(coro_name: str, coro: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run a coroutine for the duration of the block, cancelled at its end."""
    task = asyncio.create_task(coro, name=coro_name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _start_simulators(stack: contextlib.AsyncExitStack) -> None:
    """The simulated devices crds/samples point at: a Modbus PLC, an OPC UA boiler, a BLE thermometer.

    GPIO needs none: off a Raspberry Pi the GPIO mapper uses gpiozero's mock pins by itself.
    """
    from mappers.ble.sample import serve_sample as serve_ble
    from mappers.modbus.simulator import serve_sample as serve_modbus
    from mappers.opcua.simulator import serve_sample as serve_opcua

    _check_free("the simulated Modbus PLC", SAMPLE_MODBUS_PORT)
    _check_free("the simulated OPC UA boiler", SAMPLE_OPCUA_PORT)
    await stack.enter_async_context(
        _background("simulated modbus device", serve_modbus("127.0.0.1", SAMPLE_MODBUS_PORT))
    )
    await stack.enter_async_context(
        _background("simulated OPC UA server", serve_opcua("127.0.0.1", SAMPLE_OPCUA_PORT))
    )
    await stack.enter_async_context(_background("simulated BLE thermometer", serve_ble()))


async def run(args: argparse.Namespace) -> int:
    manifests = load_manifests(args.devices)
    data_dir: Path = args.data_dir
    kubeconfig: Path | None = None
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            broker = broker_address(args)
        else:
            try:
                broker = await stack.enter_async_context(embedded_broker("127.0.0.1", args.mqtt_port))
            except BrokerUnavailable as exc:
                raise TemporaryError(
                    f"{exc}. If another MQTT broker (a mosquitto service?) holds the port, use it with "
                    f"--broker mqtt://127.0.0.1:{args.mqtt_port}, or pick another port with --mqtt-port"
                ) from exc
        if not args.no_apiserver:
            from api_server import ApiServerError, serve

            try:
                server = await stack.enter_async_context(
                    serve(data_dir / "apiserver", "127.0.0.1", args.apiserver_port, crds=[CRDS])
                )
            except ApiServerError as exc:
                raise TemporaryError(f"the embedded API server could not start: {exc}") from exc
            kubeconfig = server.kubeconfig_path.resolve()
        mappers = not args.no_mappers
        if mappers:
            await _start_simulators(stack)
        gateway = Gateway(
            GatewaySettings(
                node=args.node,
                broker=broker,
                data_dir=data_dir / "nodes" / args.node,
                manifests=manifests,
                mappers=[] if mappers else None,
            )
        )

        def banner() -> None:
            assert gateway.service is not None
            print(_banner(broker, gateway.service, data_dir, kubeconfig, mappers), flush=True)

        await run_until_stopped(gateway.run(), ready=gateway.ready, on_ready=banner)
    return 0
