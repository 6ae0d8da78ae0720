"""``edgetwin twin list | get | set | watch``: read and steer device twins from a terminal.

Sent while the stack is still starting, a command waits (up to ``--wait`` seconds, saying so once)
for the broker and for a twin service on it, instead of failing after its timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from edgetwin.commands._broker import add_broker_options, broker_address
from edgetwin.commands._twin_view import (
    LiveView,
    describe,
    device_json,
    device_table,
    devices_table,
    events_json,
)
from twin.client import DeviceView, TwinClient
from twin.errors import BrokerUnavailable, UnknownDevice
from twin.topics import full_device_id


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("twin", help="list, read and steer twins, watch them change")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_broker_options(common)
    common.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for each request to the twin service to be answered, once it is up "
        "(default 5); watch uses it only for its first requests, then follows until Ctrl-C or --count",
    )
    common.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the broker and a twin service to come up, e.g. while `edgetwin up` "
        "starts (default 30; 0: do not wait)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--node",
        help="the device's node: checked first (helps when several nodes share a broker); for list, "
        "the node to list (default: every node on the broker)",
    )

    listing = verbs.add_parser("list", parents=[common], help="every device with its state and values")
    listing.set_defaults(run=run_list)

    get = verbs.add_parser("get", parents=[common], help="show a device's state and properties")
    get.add_argument("device", help="device id: NAME (namespace default) or NAMESPACE/NAME")
    get.set_defaults(run=run_get)

    set_ = verbs.add_parser(
        "set", parents=[common], help="set a desired value", description="Set a desired value and print it."
    )
    set_.add_argument("device", help="device id: NAME or NAMESPACE/NAME")
    set_.add_argument("property", help="property name")
    set_.add_argument("value", help="desired value (a string on the wire; checked against the DeviceModel)")
    set_.set_defaults(run=run_set)

    watch = verbs.add_parser(
        "watch",
        parents=[common],
        help="follow changes: a live table on a terminal, one line per event otherwise",
        description=(
            "Follow documents, deltas and state changes. On a terminal the devices are shown as a table "
            "that updates in place; piped, or with --count or --json, one line per event."
        ),
    )
    watch.add_argument("device", nargs="?", help="device id (default: every device)")
    watch.add_argument(
        "--count", type=int, default=0, help="stop after this many events (default: run until Ctrl-C)"
    )
    watch.set_defaults(run=run_watch)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[TwinClient]:
    """A connected client, once the broker and a twin service are up (within ``--wait``)."""
    broker = broker_address(args)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    said = False
    while True:
        client = TwinClient(broker, timeout=args.timeout)
        try:
            await client.__aenter__()
            break
        except BrokerUnavailable:
            if loop.time() >= deadline:
                raise
            if not said:
                _say(f"waiting for the MQTT broker at {broker.url} ...")
                said = True
            await asyncio.sleep(min(0.5, max(0.0, deadline - loop.time())))
    try:
        if args.wait > 0 and not await client.nodes():
            _say(f"waiting for a twin service on {broker.url} ...")
            # A twin that announces no presence (KubeEdge's) may still answer: go on after the wait.
            await client.wait_for_twin(max(0.0, deadline - loop.time()))
        yield client
    finally:
        await client.__aexit__(None, None, None)


async def _check_node(client: TwinClient, device: str, node: str | None) -> None:
    if node is None:
        return
    members = [m.id for m in await client.members(node)]
    if full_device_id(device) not in members:
        raise UnknownDevice(
            f"device {full_device_id(device)} is not on node {node} "
            f"(its devices: {', '.join(members) or 'none'})"
        )


async def run_list(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        nodes = [args.node] if args.node else await client.nodes()
        if not nodes:
            raise UnknownDevice(
                f"no twin service announces itself on {broker_address(args).url}: give the node with --node"
            )
        node_of: dict[str, str] = {}
        devices: list[DeviceView] = []
        for node in nodes:
            for member in await client.members(node):
                node_of[member.id] = node
                devices.append(await client.device(member.id))
    if args.json:
        print(json.dumps([{"node": node_of[d.id], **device_json(d)} for d in devices]))
    elif devices:
        print(devices_table(devices, node_of=node_of))
    else:
        print(f"no devices on {', '.join(nodes)}")
    return 0


async def run_get(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        await _check_node(client, args.device, args.node)
        device = await client.device(args.device)
    print(json.dumps(device_json(device)) if args.json else device_table(device))
    return 0


async def run_set(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        await _check_node(client, args.device, args.node)
        states = await client.set_desired(args.device, {args.property: args.value})
    if args.json:
        print(json.dumps({n: {"desired": s.desired, "reported": s.reported} for n, s in states.items()}))
    else:
        print(f"{full_device_id(args.device)}: {args.property} desired = {args.value}")
    return 0


async def run_watch(args: argparse.Namespace) -> int:
    device = None if args.device is None else full_device_id(args.device)
    live = sys.stdout.isatty() and not args.json and not args.count
    async with _client(args) as client:
        if device is not None:
            await _check_node(client, device, args.node)
        # A named device is asked for first: an unknown one is an error, not a silent wait.
        async with client.subscription(device, ("document", "delta", "state")) as events:
            view = LiveView()
            if live:
                for member_id in [device] if device else await _all_devices(client, args.node):
                    view.devices[member_id] = await client.device(member_id)
                print(view.render(), flush=True)
            else:
                _say(f"watching {device or 'all devices'} on {broker_address(args).url} (Ctrl-C to stop)")
            seen = 0
            while not args.count or seen < args.count:
                event = await events.get()
                seen += 1
                if live:
                    view.take(event)
                    print(view.render(), flush=True)
                else:
                    print(events_json(event) if args.json else describe(event), flush=True)
    return 0


async def _all_devices(client: TwinClient, node: str | None) -> list[str]:
    nodes = [node] if node else await client.nodes()
    return [m.id for n in nodes for m in await client.members(n)]
