"""Running a long-lived command until Ctrl-C (SIGINT) or a service manager's SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

__all__ = ["run_until_stopped", "wait_for_stop"]


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


async def run_until_stopped(
    main: Coroutine[Any, Any, None],
    *,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[], Awaitable[None] | None] | None = None,
) -> None:
    """Run ``main`` until SIGTERM/SIGINT or until it ends; its error, if any, is raised here.

    ``on_ready`` runs once ``ready`` is set (to print what is up), unless ``main`` ends first.
    """
    task = asyncio.create_task(main, name="main")
    stopper = asyncio.create_task(wait_for_stop(), name="wait for stop")
    try:
        if ready is not None and on_ready is not None:
            waiter = asyncio.create_task(ready.wait(), name="wait for ready")
            # SIGTERM counts before ready too: a service that cannot get ready (its broker is away)
            # must still stop when asked.
            await asyncio.wait({task, waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done() and not task.done() and not stopper.done():
                result = on_ready()
                if result is not None:
                    await result
            waiter.cancel()
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
    if not task.cancelled():
        error = task.exception()
        if error is not None:
            raise error
