"""``edgetwin mapper``: list the installed mapper plugins, run some for a node, start a new one.

``list`` also shows the KubeEdge mapper-framework mappers registered over DMI with the node agents
of this machine, from the file each agent keeps in its data dir (``node_agent.dmi.roster``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.settings import DEFAULT_NODE, default_data_dir
from mappers import PluginUnavailable, Registry, run_mappers
from mappers.scaffold import NAME_RULE, scaffold
from node_agent.dmi import find_rosters


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("mapper", help="list, run or create protocol mapper plugins")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    listing = verbs.add_parser(
        "list",
        help="show the installed mapper plugins and whether they load, and the KubeEdge mappers "
        "registered over DMI with the node agents on this machine",
    )
    listing.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="a node agent's data dir to look for DMI mappers in "
        "(default: every node under .edgetwin/nodes, or EDGETWIN_DATA_DIR)",
    )
    listing.set_defaults(run=run_list)

    run = verbs.add_parser("run", help="run mapper plugins for a node's devices (until Ctrl-C)")
    run.add_argument("protocols", nargs="+", metavar="PROTOCOL", help="protocol(s) to serve, e.g. modbus")
    run.add_argument("--node", default=DEFAULT_NODE, help="the edge node's name (default %(default)s)")
    add_broker_options(run)
    run.set_defaults(run=run_run)

    new = verbs.add_parser(
        "new",
        help="create a plugin package with a working example, a sample device and tests",
        description="Write edgetwin-mapper-NAME/: pyproject.toml with the entry point, the plugin "
        "(a simulated connection where your protocol library goes), examples/device.yaml and tests.",
    )
    new.add_argument(
        "name",
        help="the protocol name Devices give in spec.protocol.protocolName, e.g. mybus or my-bus "
        f"({NAME_RULE})",
    )
    new.add_argument("--dir", type=Path, default=Path(), help="where to create the package (default: here)")
    new.set_defaults(run=run_new)


def run_list(args: argparse.Namespace) -> int:
    _list_plugins()
    _list_dmi_mappers(args.data_dir or default_data_dir(), asked=args.data_dir is not None)
    return 0


def _list_dmi_mappers(data_dir: Path, *, asked: bool) -> None:
    rosters = find_rosters([data_dir])
    if not rosters:
        # Said only when asked about a data dir: without DMI the listing is the plugins alone.
        if asked:
            print(f"\nno node agent serving DMI under {data_dir} (edgetwin node NAME --dmi-socket PATH)")
        return
    for folder, roster in rosters:
        running = "" if roster.running else ", agent not running"
        print(f"\nDMI mappers of node {roster.node} (socket {roster.dmi_socket}, data {folder}{running}):")
        if not roster.mappers:
            print("  none registered")
            continue
        rows = [("NAME", "PROTOCOL", "SOCKET", "STATE", "DEVICES")]
        for mapper in roster.mappers:
            state = mapper.state if roster.running else f"unknown (was {mapper.state})"
            rows.append((mapper.name, mapper.protocol, mapper.socket, state, str(mapper.devices)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            print(
                "  "
                + "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True))
                + "  "
                + row[4]
            )


def _list_plugins() -> None:
    registry = Registry()
    names = registry.names()
    if not names:
        print("no mapper plugins installed (entry-point group edgetwin.mappers)")
        return
    rows = [("PROTOCOL", "DISTRIBUTION", "TARGET", "STATUS")]
    for name in names:
        info = registry.info(name)
        try:
            registry.load(name)
            status = "ok"
        except PluginUnavailable as exc:
            status = f"error: {exc.__cause__ or exc}"
        rows.append((name, info.origin, info.target, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )


async def run_run(args: argparse.Namespace) -> int:
    registry = Registry()
    for protocol in args.protocols:
        registry.load(protocol)  # PluginUnavailable: a clear message and exit code 2
    broker = broker_address(args)
    print(
        f"mapper {', '.join(args.protocols)} for node {args.node} on {broker.url} (Ctrl-C to stop)",
        flush=True,
    )
    await run_mappers(args.node, broker, args.protocols, registry=registry)
    return 0


def run_new(args: argparse.Namespace) -> int:
    root = scaffold(args.name, args.dir)
    print(f"created {root}")
    print(f"  cd {root} && pip install -e . && edgetwin mapper list && python -m pytest")
    print(f"  sample device: {root / 'examples' / 'device.yaml'} (README.md says how to run it)")
    return 0
