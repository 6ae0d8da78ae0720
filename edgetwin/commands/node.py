"""``edgetwin node NAME``: one edge node (its twin service, and mappers with ``--mappers``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._stop import run_until_stopped
from edgetwin.settings import default_data_dir
from node_agent import Gateway, GatewaySettings
from twin.manifests import load_manifests


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("node", help="run the twin service of one edge node")
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
        help="Device/DeviceModel YAML files or folders (default: what the data dir already holds)",
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
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or default_data_dir() / "nodes" / args.name
    manifests = load_manifests(args.devices) if args.devices else None
    broker = broker_address(args)
    gateway = Gateway(
        GatewaySettings(
            node=args.name,
            broker=broker,
            data_dir=data_dir,
            manifests=manifests,
            mappers=args.mappers,
            legacy_topics=not args.no_legacy_topics,
            dmi_socket=args.dmi_socket,
        )
    )

    def banner() -> None:
        devices = len(gateway.service.devices) if gateway.service is not None else 0
        mappers = "" if args.mappers is None else ", mappers in this process"
        if gateway.dmi is not None:
            mappers += f", DMI on {gateway.dmi.socket}"
        where = f"on {broker.url}{mappers}, data in {data_dir}"
        print(f"node {args.name}: twin service for {devices} devices {where}", flush=True)

    await run_until_stopped(gateway.run(), ready=gateway.ready, on_ready=banner)
    return 0
