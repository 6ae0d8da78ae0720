"""Switch the LED of examples/led from the command line, through its twin.

    python examples/led/led.py on        # or off, toggle, status

Sets the desired value of ``power-status`` with ``TwinClient`` and waits until the device reports
it back, so "ON" means the mapper really drove the pin. Needs a twin and the gpio mapper running
(``edgetwin node edge-node-1 --devices examples/led --mappers gpio``); see the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from twin.client import TwinClient, TwinEvent
from twin.errors import EdgetwinError

PROPERTY = "power-status"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Switch the example LED through its device twin.")
    parser.add_argument("action", choices=("on", "off", "toggle", "status"), help="what to do with the LED")
    parser.add_argument("--device", default="led", help="the Device's name (default %(default)s)")
    parser.add_argument(
        "--broker",
        default=os.environ.get("EDGETWIN_BROKER", "mqtt://127.0.0.1:1883"),
        help="MQTT broker of the twin (env EDGETWIN_BROKER; default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the LED to report (default 5)"
    )
    return parser.parse_args(argv)


def reported_in(event: TwinEvent) -> str | None:
    state = event.current.get(PROPERTY)
    return state.reported if state is not None else None


async def switch(args: argparse.Namespace) -> int:
    async with (
        TwinClient(args.broker, timeout=args.timeout) as twins,
        twins.subscription(args.device, ("document",)) as documents,
    ):
        state = (await twins.get(args.device)).get(PROPERTY)
        reported = state.reported if state is not None else None
        if args.action == "status":
            desired = (state.desired if state is not None else None) or "none"
            print(f"{args.device}: {PROPERTY} is {reported or 'not reported yet'} (desired {desired})")
            return 0
        if args.action == "toggle":
            wanted = "OFF" if (reported or "").upper() == "ON" else "ON"
        else:
            wanted = args.action.upper()
        started = time.monotonic()
        await twins.set_desired(args.device, {PROPERTY: wanted})
        try:
            async with asyncio.timeout(args.timeout):
                while (reported or "").upper() != wanted:
                    reported = reported_in(await documents.get()) or reported
        except TimeoutError:
            print(
                f"{args.device}: desired {PROPERTY}={wanted} is set, but the device did not report it within "
                f"{args.timeout:g}s: is the gpio mapper running (edgetwin node ... --mappers gpio)?",
                file=sys.stderr,
            )
            return 1
        took = (time.monotonic() - started) * 1000
        print(f"{args.device}: {PROPERTY} is {wanted} (reported by the device after {took:.0f} ms)")
        return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(switch(args))
    except EdgetwinError as exc:
        print(f"led.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
