"""Waiting for the end of a long-running command: Ctrl-C (SIGINT) or a service manager's SIGTERM."""

from __future__ import annotations

import asyncio
import signal


async def wait_for_stop() -> None:
    """Return on SIGTERM; SIGINT cancels the caller through ``asyncio.run`` as usual.

    Either way the caller's ``finally`` and ``async with`` blocks run, so the twin store flushes
    the reported values it holds instead of losing them to a plain SIGTERM exit.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
