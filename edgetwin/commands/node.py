"""``edgetwin node NAME``: the twin service for one edge node on a given broker."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._stop import wait_for_stop
from edgetwin.settings import default_data_dir
from twin.manifests import load_manifests
from twin.service import TwinService
from twin.store import TwinStore


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
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or default_data_dir() / "nodes" / args.name
    manifests = load_manifests(args.devices) if args.devices else None
    broker = broker_address(args)
    async with TwinStore(data_dir) as store:
        service = TwinService(args.name, broker, store, legacy_topics=not args.no_legacy_topics)
        await service.start(manifests)
        print(
            f"node {args.name}: twin service for {len(service.devices)} devices on {broker.url}, "
            f"data in {data_dir}",
            flush=True,
        )
        try:
            if args.mappers is None:
                await wait_for_stop()
            else:
                from mappers import run_mappers

                async with asyncio.TaskGroup() as group:
                    mapper_task = group.create_task(
                        run_mappers(args.name, broker, args.mappers or None), name="mappers"
                    )
                    await wait_for_stop()
                    mapper_task.cancel()
        finally:
            await service.stop()
    return 0
