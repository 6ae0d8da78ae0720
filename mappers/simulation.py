"""What the sample devices' simulators share (``edgetwin up`` and ``python -m mappers.X.simulator``):
a value that wanders on a clock, so that a demo shows changes, and the command line of one."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

__all__ = ["sample_main", "wander"]

#: One step of a sample's values, given the number of steps so far.
Step = Callable[[int], Awaitable[None] | None]


async def wander(step: Step, *, drift: float, ready: asyncio.Event | None = None) -> None:
    """Set ``ready``, then run ``step`` every ``drift`` seconds (never, with ``drift <= 0``) until
    cancelled."""
    if ready is not None:
        ready.set()
    if drift <= 0:
        await asyncio.Event().wait()
    tick = 0
    while True:
        await asyncio.sleep(drift)
        tick += 1
        result = step(tick)
        if result is not None:
            await result


def sample_main(
    argv: Sequence[str] | None,
    description: str,
    port: int,
    serve: Callable[..., Coroutine[Any, Any, None]],
) -> None:
    """``--host``, ``--port`` and ``--drift`` for ``serve(host, port, drift=…)``, run until Ctrl-C."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--drift", type=float, default=1.0, help="seconds between value changes (0: none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, drift=args.drift))
