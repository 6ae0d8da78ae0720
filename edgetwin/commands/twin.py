"""``edgetwin twin get | set | watch``: read and steer device twins from a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from edgetwin.commands._broker import add_broker_options, broker_address
from twin.client import PropertyState, TwinClient, TwinEvent
from twin.errors import UnknownDevice
from twin.topics import full_device_id


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("twin", help="read twins, set desired values, watch changes")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_broker_options(common)
    common.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the twin (default 5)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument(
        "--node",
        help="check that the device belongs to this node first (helps when several nodes share a broker)",
    )

    get = verbs.add_parser("get", parents=[common], help="show a device's twin")
    get.add_argument("device", help="device id: NAME (namespace default) or NAMESPACE/NAME")
    get.set_defaults(run=run_get)

    set_ = verbs.add_parser("set", parents=[common], help="set a desired value")
    set_.add_argument("device", help="device id: NAME or NAMESPACE/NAME")
    set_.add_argument("property", help="property name")
    set_.add_argument("value", help="desired value (a string on the wire; checked against the DeviceModel)")
    set_.set_defaults(run=run_set)

    watch = verbs.add_parser("watch", parents=[common], help="print documents and deltas as they happen")
    watch.add_argument("device", nargs="?", help="device id (default: every device)")
    watch.add_argument("--count", type=int, default=0, help="stop after this many events (default: never)")
    watch.set_defaults(run=run_watch)


def _stamp(ms: int) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(states: dict[str, PropertyState]) -> str:
    rows = [("PROPERTY", "DESIRED", "REPORTED", "TYPE", "REPORTED AT")]
    for name, state in sorted(states.items()):
        rows.append(
            (name, state.desired or "-", state.reported or "-", state.type, _stamp(state.reported_timestamp))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _as_json(states: dict[str, PropertyState]) -> str:
    return json.dumps(
        {n: {"desired": s.desired, "reported": s.reported, "type": s.type} for n, s in sorted(states.items())}
    )


async def _check_node(client: TwinClient, device: str, node: str | None) -> None:
    if node is None:
        return
    members = [m.id for m in await client.members(node)]
    if full_device_id(device) not in members:
        raise UnknownDevice(
            f"device {full_device_id(device)} is not on node {node} "
            f"(its devices: {', '.join(members) or 'none'})"
        )


async def run_get(args: argparse.Namespace) -> int:
    async with TwinClient(broker_address(args), timeout=args.timeout) as client:
        await _check_node(client, args.device, args.node)
        states = await client.get(args.device)
    print(_as_json(states) if args.json else _table(states))
    return 0


async def run_set(args: argparse.Namespace) -> int:
    async with TwinClient(broker_address(args), timeout=args.timeout) as client:
        await _check_node(client, args.device, args.node)
        states = await client.set_desired(args.device, {args.property: args.value})
    if args.json:
        print(_as_json(states))
    else:
        print(f"{args.device}: {args.property} desired = {args.value}")
    return 0


def _describe(event: TwinEvent) -> str:
    if event.kind == "delta":
        changes = ", ".join(f"{name}={value}" for name, value in sorted(event.delta.items()))
        return f"delta     {event.device_id}  pending: {changes}"
    parts = []
    for name, state in sorted(event.current.items()):
        parts.append(f"{name}: desired={state.desired or '-'} reported={state.reported or '-'}")
    return f"document  {event.device_id}  " + "; ".join(parts)


async def run_watch(args: argparse.Namespace) -> int:
    device = None if args.device is None else full_device_id(args.device)
    async with TwinClient(broker_address(args), timeout=args.timeout) as client:
        if device is not None:
            await _check_node(client, device, args.node)
        # A named device is asked for first: an unknown one is an error, not a silent wait.
        async with client.subscription(device) as events:
            where = broker_address(args).url
            print(f"watching {device or 'all devices'} on {where} (Ctrl-C to stop)", file=sys.stderr)
            seen = 0
            while not args.count or seen < args.count:
                event = await events.get()
                seen += 1
                line = (
                    json.dumps({"kind": event.kind, "device": event.device_id, **event.body})
                    if args.json
                    else _describe(event)
                )
                print(line, flush=True)
    return 0
