"""Running the pieces of a gateway so that none dies unseen.

Each piece (the twin service, the in-process mappers, the cloud link) runs inside
``supervise``: a crash is logged with its traceback, then the piece is restarted after a back-off,
or, when it keeps crashing (``max_restarts`` within ``window`` seconds) or must not be restarted,
``PieceFailed`` is raised. Raised inside the gateway's TaskGroup, that cancels the other pieces
and ends the process with a non-zero exit: a gateway is either whole or stopped, never running
with a dead piece in the background.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from twin.errors import PermanentError

__all__ = ["PieceFailed", "RestartPolicy", "supervise"]

log = logging.getLogger(__name__)


class PieceFailed(PermanentError):
    """A piece of the gateway failed for good; the gateway stops."""

    code = 500


@dataclass(frozen=True)
class RestartPolicy:
    #: Restart after a crash at all (False: the first crash stops the gateway).
    restart: bool = True
    #: More crashes than this within ``window`` seconds stop the gateway; ``None``: never (a piece the
    #: node can serve without, such as the cloud link, is backed off instead).
    max_restarts: int | None = 5
    window: float = 60.0
    #: Back-off before each restart; the last one repeats.
    delays: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0)


async def supervise(
    name: str, piece: Callable[[], Awaitable[None]], policy: RestartPolicy = RestartPolicy()
) -> None:
    """Run ``piece()`` until it returns; restart it on a crash as ``policy`` allows."""
    crashes: deque[float] = deque()
    loop = asyncio.get_running_loop()
    while True:
        try:
            await piece()
        except Exception as exc:  # the supervisor: every crash is logged and decided on
            now = loop.time()
            crashes.append(now)
            while crashes and crashes[0] < now - policy.window:
                crashes.popleft()
            if not policy.restart or (policy.max_restarts is not None and len(crashes) > policy.max_restarts):
                log.exception("%s failed; stopping the gateway", name)
                raise PieceFailed(f"{name} failed: {type(exc).__name__}: {exc}") from exc
            delay = policy.delays[min(len(crashes), len(policy.delays)) - 1] if policy.delays else 1.0
            log.exception("%s crashed; restarting it in %.1fs", name, delay)
            await asyncio.sleep(delay)
        else:
            return
