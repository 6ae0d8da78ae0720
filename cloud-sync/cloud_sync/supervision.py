"""Running each piece of cloud-sync so that none dies unseen and none takes the others down.

A piece (a watch, the status writer, the cloud link...) that fails is logged with its traceback
and started again after a back-off that grows while it keeps failing; cloud-sync is a service that
must outlast an API server or a broker that is away for an hour. Cancellation (shutdown) passes
through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cloud_sync.retry import DELAYS, Backoff

__all__ = ["supervise"]

log = logging.getLogger(__name__)

_HEALTHY = 60.0  # a piece that ran this long before failing starts over from the shortest delay


async def supervise(
    name: str, piece: Callable[[], Awaitable[None]], *, delays: tuple[float, ...] = DELAYS
) -> None:
    loop = asyncio.get_running_loop()
    backoff = Backoff(delays)
    while True:
        started = loop.time()
        try:
            await piece()
            log.warning("%s stopped by itself; starting it again", name)
        except Exception:  # the supervisor: every failure is logged and the piece started again
            if loop.time() - started > _HEALTHY:
                backoff.reset()
            delay = backoff.next()
            log.exception("%s failed; starting it again in %.1fs", name, delay)
            await asyncio.sleep(delay)
            continue
        await asyncio.sleep(backoff.next())
