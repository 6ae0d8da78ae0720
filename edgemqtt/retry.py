"""How a long-lived client keeps trying to reach its broker without spinning or flooding the log.

A broker that is away (``BrokerUnavailable``) is tried again after short, growing delays; a refusal
that only a person can fix (``ConnectionRefused``: a password, an ACL, a certificate) only every
``refused_delay`` seconds, 60 by default. Each kind of failure is logged once when it starts, the
refusal as an error naming its reason, so a service that runs for months leaves one line per
episode rather than one per attempt.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable

from edgemqtt.errors import BrokerUnavailable, ConnectionRefused

__all__ = ["REFUSED_DELAY", "keep_trying"]

log = logging.getLogger("edgemqtt.client")

#: Seconds between attempts after a permanent refusal (a password or an ACL must change first).
REFUSED_DELAY = 60.0


async def keep_trying(
    attempt: Callable[[], Awaitable[None]],
    *,
    url: str,
    delays: tuple[float, ...],
    refused_delay: float,
    first_delay: float,
    stopped: Callable[[], bool],
) -> None:
    """Call ``attempt()`` until it succeeds or ``stopped()``; other errors than the two above raise."""
    delay = first_delay
    reported: str | None = None
    for tries in itertools.count():
        if stopped():
            return
        if delay:
            await asyncio.sleep(delay)
        try:
            await attempt()
        except ConnectionRefused as exc:
            if str(exc) != reported:
                log.error("%s; trying again every %g s", exc, refused_delay)  # noqa: TRY400 - no traceback
            reported = str(exc)
            delay = refused_delay
            continue
        except BrokerUnavailable as exc:
            (log.warning if reported != "unavailable" else log.debug)("%s; retrying", exc)
            reported = "unavailable"
            # A reconnect has waited delays[0] already (first_delay): it goes on from delays[1].
            delay = delays[min(tries + (1 if first_delay else 0), len(delays) - 1)]
            continue
        if tries:
            log.info("connected to the MQTT broker at %s", url)
        return
