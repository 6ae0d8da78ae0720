"""``edgetwin broker``: run the embedded MQTT broker alone."""

from __future__ import annotations

import argparse

from edgemqtt.broker import embedded_broker
from edgetwin.commands._stop import wait_for_stop


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("broker", help="run the embedded MQTT broker")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="port to listen on (default 1883)")
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with embedded_broker(args.host, args.port) as address:
        print(f"embedded MQTT broker on {address.url} (Ctrl-C to stop)", flush=True)
        await wait_for_stop()
    return 0
