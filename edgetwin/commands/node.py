"""``edgetwin node NAME``: one edge node (its twin service, mappers with ``--mappers``, the cloud link
with ``--cloud``, the pods bound to it with ``--pods``)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._stop import run_until_stopped
from edgetwin.settings import default_data_dir
from edgetwin.simulators import SIMULATED, SimulatorPorts, serve_simulators
from node_agent import CloudSettings, Gateway, GatewaySettings, InvalidGatewaySettings
from twin.manifests import load_manifests

if TYPE_CHECKING:
    from node_agent.pods import PodSettings

TOKEN_ENV = "EDGETWIN_TOKEN"

DESCRIPTION = """\
Run one edge node: the device twin on the local broker, and with --mappers the protocol mappers in
the same process. With --cloud the node joins a cluster through its cloud broker: it receives its
devices from cloud-sync (no --devices), sends reported values and device state up, and keeps
serving locally, from its own store, while the cloud is unreachable. With --pods it also runs the
pods the cluster binds to it (docs/pods.md), and keeps them running while the cloud is away."""

EPILOG = """\
examples:
  edgetwin node edge-node-1 --devices crds/samples/ --mappers
  edgetwin node edge-node-1 --broker mqtt://127.0.0.1:1883 --cloud mqtts://cloud.example:8883 \\
      --token-file /etc/edgetwin/token --data-dir /var/lib/edgetwin --mappers --metrics-port 9464
  edgetwin node edge-node-1 --cloud mqtt://127.0.0.1:1884 --token TOKEN --pods podman
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run one edge node: its twin service, mappers, and the link to its cloud",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", help="the node name (Device.spec.nodeName of its devices)")
    add_broker_options(parser)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="where twins are stored (default: .edgetwin/nodes/NAME)"
    )
    parser.add_argument(
        "--devices",
        type=Path,
        nargs="*",
        default=None,
        help="Device/DeviceModel YAML files or folders (default: what the data dir already holds); "
        "not with --cloud, which sends the node its devices",
    )
    parser.add_argument(
        "--no-legacy-topics",
        action="store_true",
        help="publish events only on $hw/events/device/NAMESPACE/NAME/..., not also on the bare NAME",
    )
    parser.add_argument(
        "--mappers",
        nargs="*",
        metavar="PROTOCOL",
        default=None,
        help="also host mappers in this process: the named protocols, or all installed if none is named",
    )
    parser.add_argument(
        "--dmi-socket",
        type=Path,
        default=None,
        metavar="PATH",
        help="also serve KubeEdge's DMI on this Unix socket, for mappers built with KubeEdge's "
        "mapper-framework (KubeEdge's default: /etc/kubeedge/dmi.sock; a directory means DIR/dmi.sock)",
    )
    cloud = parser.add_argument_group("cloud link (docs/cloud-link.md)")
    add_broker_options(
        cloud,
        name="cloud",
        help="the cluster's cloud broker to join, mqtt://HOST:PORT or mqtts://HOST:PORT; the node logs in "
        "as NAME with a password made from the join token",
    )
    cloud.add_argument(
        "--token",
        default=None,
        help=f"the cluster's join token (`edgetwin cloud token`); or --token-file, or env {TOKEN_ENV}",
    )
    cloud.add_argument("--token-file", type=Path, metavar="FILE", help="read the join token from FILE")
    cloud.add_argument(
        "--heartbeat",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between heartbeats to the cloud (default %(default)g)",
    )
    cloud.add_argument(
        "--resend",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds after which what the cloud has not acknowledged is sent again (default %(default)g)",
    )
    cloud.add_argument(
        "--pods",
        nargs="?",
        const="process",
        choices=("process", "podman"),
        default=None,
        metavar="RUNTIME",
        help="run the pods the cluster binds to this node: 'process' (the default runtime: each "
        "container's command as a local process with the agent's rights, nothing to install) or "
        "'podman' (containers; needs podman and runc). Off unless given: a pod runs whatever its "
        "spec says on this machine",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve Prometheus metrics on http://0.0.0.0:N/metrics (default: none)",
    )
    local = parser.add_argument_group("single machine and demos")
    local.add_argument(
        "--serve-broker",
        action="store_true",
        help="host the embedded MQTT broker at --broker's address in this process (no mosquitto needed)",
    )
    local.add_argument(
        "--simulate",
        nargs="*",
        metavar="PROTOCOL",
        default=None,
        help=f"also run simulated devices in this process, where crds/samples point: {', '.join(SIMULATED)} "
        "(all if none is named)",
    )
    local.add_argument(
        "--sim-modbus-port",
        type=int,
        default=5020,
        metavar="N",
        help="port of the simulated Modbus PLC (5020)",
    )
    local.add_argument(
        "--sim-opcua-port",
        type=int,
        default=4840,
        metavar="N",
        help="port of the simulated OPC UA boiler (4840)",
    )
    parser.set_defaults(run=run)


def _token(args: argparse.Namespace) -> str:
    if args.token is not None and args.token_file is not None:
        raise InvalidGatewaySettings("give the join token once: --token or --token-file, not both")
    if args.token_file is not None:
        path: Path = args.token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidGatewaySettings(f"cannot read the join token from {args.token_file}: {exc}") from exc
        if not token:
            raise InvalidGatewaySettings(f"the token file {args.token_file} is empty")
        return token
    token = str(args.token) if args.token is not None else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise InvalidGatewaySettings(
            f"--cloud needs the cluster's join token: --token, --token-file or env {TOKEN_ENV} "
            "(`edgetwin cloud token` prints one)"
        )
    return token.strip()


def cloud_settings(args: argparse.Namespace) -> CloudSettings | None:
    """The cloud link the options ask for, checked now so that a mistake is one line at start."""
    if args.cloud is None:
        if args.token is not None or args.token_file is not None:
            raise InvalidGatewaySettings("--token and --token-file are for joining a cloud: add --cloud URL")
        return None
    if args.devices is not None:
        raise InvalidGatewaySettings(
            "a node joined to a cloud receives its devices from it: give either --cloud or --devices, "
            "not both"
        )
    for option in ("heartbeat", "resend"):
        if not getattr(args, option) > 0:
            raise InvalidGatewaySettings(
                f"--{option} must be a number of seconds above 0, not {getattr(args, option):g}"
            )
    address = broker_address(args, name="cloud")
    address.ssl_context()  # unreadable TLS files are an error now, not a retry loop later
    return CloudSettings(broker=address, token=_token(args), heartbeat=args.heartbeat, resend=args.resend)


def pod_settings(args: argparse.Namespace) -> PodSettings | None:
    if args.pods is None:
        return None
    if args.cloud is None:
        raise InvalidGatewaySettings("a node's pods come from its cloud: --pods needs --cloud URL")
    from node_agent.node_status import addresses
    from node_agent.pods import PodSettings

    internal = [a.address for a in addresses() if a.type == "InternalIP"]
    return PodSettings(runtime=args.pods, host_ip=internal[0] if internal else "127.0.0.1")


async def run(args: argparse.Namespace) -> int:
    cloud = cloud_settings(args)
    pods = pod_settings(args)
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise InvalidGatewaySettings(f"--metrics-port must be a port number 1-65535, not {args.metrics_port}")
    data_dir = args.data_dir or default_data_dir() / "nodes" / args.name
    manifests = load_manifests(args.devices) if args.devices else None
    broker = broker_address(args)
    # The simulated devices listen before the mappers start: no "connection refused" at start.
    simulated = asyncio.Event()
    gateway = Gateway(
        GatewaySettings(
            node=args.name,
            broker=broker,
            data_dir=data_dir,
            manifests=manifests,
            mappers=args.mappers,
            legacy_topics=not args.no_legacy_topics,
            dmi_socket=args.dmi_socket,
            cloud=cloud,
            metrics_port=args.metrics_port,
            serve_broker=args.serve_broker,
            mappers_after=simulated.wait if args.simulate is not None else None,
            pods=pods,
        )
    )

    def banner() -> None:
        devices = len(gateway.service.devices) if gateway.service is not None else 0
        mappers = "" if args.mappers is None else ", mappers in this process"
        if gateway.dmi is not None:
            mappers += f", DMI on {gateway.dmi.socket}"
        joined = "" if cloud is None else f", joining the cloud at {cloud.broker.url}"
        if pods is not None:
            joined += f", pods on the {pods.runtime} runtime"
        where = f"on {broker.url}{mappers}{joined}, data in {data_dir}"
        print(f"node {args.name}: twin service for {devices} devices {where}", flush=True)

    main = gateway.run()
    if args.simulate is not None:
        ports = SimulatorPorts(args.sim_modbus_port, args.sim_opcua_port)
        main = _beside(serve_simulators(args.simulate or SIMULATED, ports, simulated), main)
    await run_until_stopped(main, ready=gateway.ready, on_ready=banner)
    return 0


async def _beside(helper: Coroutine[Any, Any, None], main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` with ``helper`` beside it; either one ending or failing ends both."""
    async with asyncio.TaskGroup() as group:
        helping = group.create_task(helper, name="simulated devices")
        await main
        helping.cancel()
