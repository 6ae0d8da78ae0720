"""``edgetwin up``: the whole product on one machine — cloud and edge, with simulated devices.

Two processes, as a real deployment has them: the cloud (``edgetwin cloud``: the embedded API
server, the cloud broker, cloud-sync) and one edge node (``edgetwin node``: its own broker, the
twin, the mappers and the simulated devices in-process, joined to the cloud). ``up`` checks every
port first (so a failed start leaves nothing half-made), starts both with their logs in
``DATA/logs/``, applies the sample Devices through the Kubernetes API (only those missing: a second
``up`` resumes with the same state), waits for their first values, and says what to try. Ctrl-C
stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path

from cloud_sync import KubeApi
from cloud_sync.access import AccessFiles
from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.settings import DEFAULT_NODE, REPO_ROOT, SAMPLES, default_data_dir
from edgetwin.simulators import SIMULATED, check_free
from edgetwin.stack import Child, SampleDevices, first_values, node_ready
from twin.errors import TemporaryError

__all__ = ["register", "run"]

# The traffic light's controller app (examples/traffic-light): an MQTT app like any user's, run
# beside the stack so that the demo moves on its own.
TRAFFIC_LIGHT_APP = REPO_ROOT / "examples" / "traffic-light" / "cycle.py"
TRAFFIC_LIGHT = "traffic-light"
#: Seconds from the samples applied until up says what is not live yet (first values, Node Ready).
LIVE_TIMEOUT = 30.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up",
        help="run the whole stack on this machine: cloud, one edge node, simulated devices",
        description=(
            "Run everything on this machine, on 127.0.0.1: the embedded Kubernetes API server, the cloud "
            "broker and cloud-sync (`edgetwin cloud`), and one edge node (`edgetwin node`) with its own "
            "broker, the mappers and simulated devices for every protocol. The sample Devices are "
            "applied through the API, so `kubectl get devices` shows their live values. State is kept "
            "in --data-dir: running it again resumes. Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--data-dir", type=Path, default=default_data_dir(), help="state folder (default .edgetwin)"
    )
    parser.add_argument("--node", default=DEFAULT_NODE, help="the edge node's name (default %(default)s)")
    add_broker_options(
        parser,
        required_default=False,
        help="use this broker for the node (mqtt[s]://HOST:PORT) instead of its own embedded one",
    )
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of the embedded API server")
    parser.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=[SAMPLES],
        help="Device/DeviceModel YAML to apply when missing (default: crds/samples)",
    )
    parser.add_argument("--no-simulators", action="store_true", help="start no simulated devices")
    ports = parser.add_argument_group("ports (all on 127.0.0.1)")
    ports.add_argument("--mqtt-port", type=int, default=1883, help="the node's MQTT broker (1883)")
    ports.add_argument("--cloud-port", type=int, default=1884, help="the cloud broker (1884)")
    ports.add_argument("--apiserver-port", type=int, default=6443, help="the embedded API server (6443)")
    ports.add_argument("--modbus-port", type=int, default=5020, help="the simulated Modbus PLC (5020)")
    ports.add_argument("--opcua-port", type=int, default=4840, help="the simulated OPC UA boiler (4840)")
    ports.add_argument("--dashboard-port", type=int, default=8090, help="the live dashboard (8090)")
    parser.add_argument("--no-dashboard", action="store_true", help="serve no dashboard")
    parser.set_defaults(run=run)


def _say(text: str, *, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def _check_ports(args: argparse.Namespace) -> None:
    """Every port up needs is free, before anything starts: a conflict names the flag that moves it."""
    if not args.broker:
        try:
            check_free("the node's MQTT broker", args.mqtt_port, "--mqtt-port")
        except TemporaryError as exc:
            raise TemporaryError(
                f"{exc}; or, if an MQTT broker (a mosquitto service?) holds it, use that one with "
                f"--broker mqtt://127.0.0.1:{args.mqtt_port}"
            ) from None
    check_free("the cloud broker", args.cloud_port, "--cloud-port")
    if not args.no_dashboard:
        check_free("the dashboard", args.dashboard_port, "--dashboard-port (or --no-dashboard)")
    if args.kubeconfig is None:
        check_free("the embedded API server", args.apiserver_port, "--apiserver-port")
    if not args.no_simulators:
        check_free("the simulated Modbus PLC", args.modbus_port, "--modbus-port")
        check_free("the simulated OPC UA boiler", args.opcua_port, "--opcua-port")


def _cloud_command(args: argparse.Namespace, cloud_dir: Path) -> list[str]:
    command = [
        "cloud",
        "--data-dir",
        str(cloud_dir),
        "--mqtt-port",
        str(args.cloud_port),
        "--admit",
        args.node,
    ]
    command += ["--no-dashboard"] if args.no_dashboard else ["--dashboard-port", str(args.dashboard_port)]
    if args.kubeconfig:
        return [*command, "--kubeconfig", str(args.kubeconfig)]
    return [*command, "--apiserver-port", str(args.apiserver_port)]


def _node_command(args: argparse.Namespace, node_broker: str, cloud_dir: Path) -> list[str]:
    command = [
        "node",
        args.node,
        "--broker",
        node_broker,
        "--data-dir",
        str(args.data_dir / "nodes" / args.node),
    ]
    command += ["--cloud", f"mqtt://127.0.0.1:{args.cloud_port}", "--token-file", str(cloud_dir / "token")]
    command.append("--mappers")
    if not args.broker:
        command.append("--serve-broker")
    if not args.no_simulators:
        command += ["--simulate", "--sim-modbus-port", str(args.modbus_port)]
        command += ["--sim-opcua-port", str(args.opcua_port)]
    return command


async def run(args: argparse.Namespace) -> int:
    samples = SampleDevices.load(
        args.devices, node=args.node, modbus_port=args.modbus_port, opcua_port=args.opcua_port
    )
    _check_ports(args)
    data: Path = args.data_dir
    node_broker = broker_address(args).url if args.broker else f"mqtt://127.0.0.1:{args.mqtt_port}"
    cloud_dir = data / "cloud"
    kubeconfig = args.kubeconfig or cloud_dir / "apiserver" / "kubeconfig"
    # The join token is made here, so that the node can start beside the cloud instead of after it.
    AccessFiles(cloud_dir).token()
    async with contextlib.AsyncExitStack() as stack:
        cloud = Child("the cloud", _cloud_command(args, cloud_dir), data / "logs" / "cloud.log")
        stack.push_async_callback(cloud.stop)
        node = Child(
            f"node {args.node}",
            _node_command(args, node_broker, cloud_dir),
            data / "logs" / f"{args.node}.log",
        )
        stack.push_async_callback(node.stop)
        _say(
            "starting the cloud (API server, cloud broker, cloud-sync) and "
            f"node {args.node} (broker, twin, mappers, simulated devices)"
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_start(cloud, "edgetwin cloud is up"))
                group.create_task(_start(node, f"node {args.node}:"))
        except* TemporaryError as failed:
            raise failed.exceptions[0] from None
        _say(f"applying the sample devices ({', '.join(str(p) for p in args.devices)}) ... ", end="")
        api = KubeApi.from_config(kubeconfig)
        stack.push_async_callback(api.aclose)
        created = await samples.apply_missing(api)
        _say(f"{len(samples.devices)} devices ({created} new)")
        waiting = [d for d in samples.devices if not samples.needs_hardware(d)]
        for device in sorted(set(samples.devices) - set(waiting)):
            _say(f"  {device} needs {samples.needs_hardware(device)}: it stays offline on this machine")
        if args.no_simulators:  # what waits for a simulator stays offline; GPIO has mock pins
            waiting = [d for d in waiting if samples.protocol(d) not in SIMULATED]
        _say("waiting for first values:", end="")
        started = time.monotonic()
        reported = await first_values(
            api, waiting, timeout=LIVE_TIMEOUT, on_value=lambda name: _say(f" {name}", end="")
        )
        missing = [d for d in waiting if d not in reported]
        left = max(1.0, LIVE_TIMEOUT - (time.monotonic() - started))
        if not await node_ready(api, args.node, timeout=left):
            missing.append(f"Node {args.node} Ready")
        took = f"{time.monotonic() - started:.1f} s"
        _say(
            f"\n  not yet after {took}: {', '.join(missing)} (see {node.log})"
            if missing
            else f" - all live in {took}"
        )
        app = await _traffic_light_app(args, node_broker, reported, data)
        if app is not None:
            stack.push_async_callback(app.stop)
        dashboard = None
        if not args.no_dashboard:
            token = AccessFiles(cloud_dir).dashboard_token()
            dashboard = f"http://127.0.0.1:{args.dashboard_port}/?token={token}"
        print(_banner(args, node_broker, kubeconfig, data, dashboard, demo=app is not None), flush=True)
        await _until_stopped(cloud, node)
    _say(f"edgetwin stopped; state kept in {data} (run it again to resume)")
    return 0


async def _traffic_light_app(
    args: argparse.Namespace, node_broker: str, reported: set[str], data: Path
) -> Child | None:
    """The traffic light's app, cycling the lights through the twin; ``None`` where it cannot run.

    A demo: when it fails, the stack runs on without it and says why.
    """
    if args.no_simulators or TRAFFIC_LIGHT not in reported or not TRAFFIC_LIGHT_APP.is_file():
        return None
    if not node_broker.startswith("mqtt://"):
        _say(
            f"the traffic-light app is not started: it speaks plain MQTT, the node's broker is {node_broker}"
        )
        return None
    app = Child(
        "traffic-light app",
        ["--broker", node_broker, "--red", "4", "--green", "4", "--yellow", "1.5"],
        data / "logs" / "traffic-light.log",
        program=[sys.executable, str(TRAFFIC_LIGHT_APP)],
    )
    try:
        await app.start("confirmed by the device", timeout=15.0)
    except TemporaryError as exc:
        _say(f"the traffic-light app did not start (the stack runs without it): {exc}")
        return None
    return app


async def _start(child: Child, ready_line: str) -> None:
    started = time.monotonic()
    await child.start(ready_line)
    _say(f"  {child.name} ready in {time.monotonic() - started:.1f} s")


async def _until_stopped(*children: Child) -> None:
    """Until Ctrl-C or SIGTERM; a child that dies on its own stops everything, with its log's tail."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        waits = {asyncio.create_task(c.wait(), name=f"watch {c.name}"): c for c in children}
        stopping = asyncio.create_task(stop.wait(), name="wait for stop")
        done, _ = await asyncio.wait({*waits, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (*waits, stopping):
            task.cancel()
        for task in done:
            if task in waits:
                child = waits[task]
                raise TemporaryError(
                    f"{child.name} stopped on its own (exit {child.returncode}); its log:\n{child.tail()}"
                )
        print("", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _banner(
    args: argparse.Namespace,
    node_broker: str,
    kubeconfig: Path,
    data: Path,
    dashboard: str | None,
    *,
    demo: bool,
) -> str:
    flag = "" if node_broker == "mqtt://127.0.0.1:1883" else f" --broker {node_broker}"
    app = f"  traffic light   cycling through its app ({TRAFFIC_LIGHT_APP.relative_to(REPO_ROOT)})"
    return "\n".join(
        [
            "edgetwin is up.",
            *([f"  dashboard       {dashboard}"] if dashboard else []),
            f"  Kubernetes API  kubeconfig {kubeconfig.resolve()}",
            f"  cloud broker    mqtt://127.0.0.1:{args.cloud_port} (cloud-sync ↔ node {args.node})",
            f"  node {args.node}   MQTT {node_broker} (KubeEdge apps and mappers connect here)",
            *([app] if demo else []),
            f"  logs            {data / 'logs'}",
            "",
            "Try, in another terminal (after `. .venv/bin/activate`):",
            f"  export KUBECONFIG={kubeconfig.resolve()}",
            "  kubectl get devices                              # live values and state",
            "  kubectl get nodes",
            "  kubectl patch device led-light --type json -p "
            '\'[{"op":"replace","path":"/spec/properties/0/desired/value","value":"true"}]\'',
            f"  edgetwin twin list{flag}                          # the same from the node's MQTT",
            f"  edgetwin twin watch{flag}",
            f"  edgetwin twin set modbus-thermostat setpoint 22{flag}",
            "  kubectl apply -f my-device.yaml                  # your own device: spec.nodeName "
            + args.node,
            "Ctrl-C stops everything.",
        ]
    )
