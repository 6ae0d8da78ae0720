"""A gateway joined to a cloud, run in the test's own event loop, with settings that keep tests quick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from edgemqtt.client import BrokerAddress
from mappers import Registry
from mappers.virtual import VirtualMapper
from node_agent import CloudSettings, Gateway, GatewaySettings
from tests.mappers.harness import FAST
from tests.node_agent.cloud_peer import NODE

TOKEN = "join-token-for-tests"


def cloud_settings(
    cloud: BrokerAddress, *, token: str = TOKEN, resend: float = 0.5, heartbeat: float = 0.2
) -> CloudSettings:
    return CloudSettings(
        broker=cloud,
        token=token,
        heartbeat=heartbeat,
        resend=resend,
        reconnect_delays=(0.05, 0.1, 0.2),
        refused_delay=60.0,
    )


@contextlib.asynccontextmanager
async def joined_node(
    local: BrokerAddress,
    cloud: BrokerAddress,
    data_dir: Path,
    *,
    mappers: Sequence[str] | None = None,
    settings: CloudSettings | None = None,
    metrics_port: int | None = None,
) -> AsyncIterator[Gateway]:
    """A running gateway of node ``NODE`` joined to ``cloud``; stopped (and flushed) on exit."""
    gateway = Gateway(
        GatewaySettings(
            node=NODE,
            broker=local,
            data_dir=data_dir,
            mappers=mappers,
            flush_interval=0.05,
            runner=FAST,
            cloud=settings or cloud_settings(cloud),
            metrics_port=metrics_port,
            metrics_refresh=0.1,
        ),
        registry=Registry(plugins={"virtual": VirtualMapper}),
    )
    running = asyncio.create_task(gateway.run(), name="gateway under test")
    try:
        async with asyncio.timeout(10):
            await gateway.ready.wait()
            await gateway.link_made.wait()  # made a moment after the twin serves
        yield gateway
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
