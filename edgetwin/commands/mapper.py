"""``edgetwin mapper``: list the installed mapper plugins, run some for a node, start a new one."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.settings import DEFAULT_NODE
from mappers import PluginUnavailable, Registry, run_mappers
from mappers.scaffold import scaffold


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("mapper", help="list, run or create protocol mapper plugins")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    listing = verbs.add_parser("list", help="show the installed mapper plugins and whether they load")
    listing.set_defaults(run=run_list)

    run = verbs.add_parser("run", help="run mapper plugins for a node's devices (until Ctrl-C)")
    run.add_argument("protocols", nargs="+", metavar="PROTOCOL", help="protocol(s) to serve, e.g. modbus")
    run.add_argument("--node", default=DEFAULT_NODE, help="the edge node's name (default %(default)s)")
    add_broker_options(run)
    run.set_defaults(run=run_run)

    new = verbs.add_parser("new", help="create a plugin package with a working example and a test")
    new.add_argument("name", help="the protocol name (lower case, e.g. mybus)")
    new.add_argument("--dir", type=Path, default=Path(), help="where to create the package (default: here)")
    new.set_defaults(run=run_new)


def run_list(args: argparse.Namespace) -> int:
    registry = Registry()
    names = registry.names()
    if not names:
        print("no mapper plugins installed (entry-point group edgetwin.mappers)")
        return 0
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
    return 0


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
    return 0
