"""Run the traffic light of examples/traffic-light: red -> green -> yellow -> red, through its twin.

    python examples/traffic-light/cycle.py --red 5 --green 5 --yellow 2     # until Ctrl-C
    python examples/traffic-light/cycle.py --cycles 1                       # once round, ending on red

Each phase is one ``TwinClient.set_desired`` of all three lights; the phase's time starts when the
device has reported the new lights back, so what you see is what the twin says. Needs a twin and
the gpio mapper running (``edgetwin node edge-node-1 --devices examples/traffic-light --mappers
gpio``); see the README.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from twin.client import TwinClient, TwinEvent
from twin.errors import EdgetwinError

LIGHTS = ("red", "yellow", "green")
# Red, then green, then yellow, then red again: the order of a traffic light.
ORDER = ("red", "green", "yellow")


class NotConfirmed(Exception):
    """The device did not report a phase's lights in time."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cycle the example traffic light through its device twin.")
    parser.add_argument("--device", default="traffic-light", help="the Device's name (default %(default)s)")
    parser.add_argument(
        "--broker",
        default=os.environ.get("EDGETWIN_BROKER", "mqtt://127.0.0.1:1883"),
        help="MQTT broker of the twin (env EDGETWIN_BROKER; default %(default)s)",
    )
    for light, seconds in (("red", 5.0), ("green", 5.0), ("yellow", 2.0)):
        help_text = f"seconds of {light} (default {seconds:g})"
        parser.add_argument(f"--{light}", type=float, default=seconds, metavar="S", help=help_text)
    parser.add_argument(
        "--cycles", type=int, default=0, help="rounds to run, ending on red; 0 runs until Ctrl-C (default 0)"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for the lights to report (default 5)"
    )
    args = parser.parse_args(argv)
    if min(args.red, args.green, args.yellow) < 0 or args.cycles < 0:
        parser.error("times and --cycles must not be negative")
    return args


def phases(cycles: int) -> list[str] | None:
    """The lights to show in order: ``None`` for an endless cycle."""
    if cycles == 0:
        return None
    return [*ORDER * cycles, "red"]


async def show(
    twins: TwinClient, events: asyncio.Queue[TwinEvent], device: str, lit: str, timeout: float
) -> float:
    """Set one phase and wait until the device reports it; returns the milliseconds that took."""
    wanted = {light: "ON" if light == lit else "OFF" for light in LIGHTS}
    started = time.monotonic()
    await twins.set_desired(device, wanted)
    state = {name: prop.reported for name, prop in (await twins.get(device)).items()}
    try:
        async with asyncio.timeout(timeout):
            while any(state.get(light) != value for light, value in wanted.items()):
                event = await events.get()
                state.update({name: prop.reported for name, prop in event.current.items() if prop.reported})
    except TimeoutError:
        raise NotConfirmed(
            f"{device}: the lights did not report {lit} within {timeout:g}s: "
            "is the gpio mapper running (edgetwin node ... --mappers gpio)?"
        ) from None
    return (time.monotonic() - started) * 1000


async def run(args: argparse.Namespace) -> int:
    times = {"red": args.red, "green": args.green, "yellow": args.yellow}
    plan = phases(args.cycles)
    async with (
        TwinClient(args.broker, timeout=args.timeout) as twins,
        twins.subscription(args.device, ("document",)) as events,
    ):
        step = 0
        while plan is None or step < len(plan):
            lit = plan[step] if plan is not None else ORDER[step % len(ORDER)]
            took = await show(twins, events, args.device, lit, args.timeout)
            now = time.strftime("%H:%M:%S")
            print(f"{now} {lit:<6} (confirmed by the device in {took:.0f} ms)", flush=True)
            step += 1
            if plan is None or step < len(plan):
                await asyncio.sleep(times[lit])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (EdgetwinError, NotConfirmed) as exc:
        print(f"cycle.py: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
