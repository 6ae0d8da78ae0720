"""One physical bus: exchanges take turns and keep the inter-frame gap between them."""

from __future__ import annotations

import asyncio
import itertools

from mappers.bus import Buses


async def test_exchanges_on_one_bus_never_overlap_and_keep_the_gap() -> None:
    buses = Buses()
    bus = buses.attach("test:serial:/dev/ttyS0", object, frame_gap=0.01)
    loop = asyncio.get_running_loop()
    spans: list[tuple[float, float]] = []

    async def exchange() -> None:
        async with bus.turn():
            start = loop.time()
            await asyncio.sleep(0)
            spans.append((start, loop.time()))

    await asyncio.gather(*(exchange() for _ in range(5)))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end + 0.01


async def test_devices_on_the_same_link_share_one_bus_and_the_last_one_out_closes_it() -> None:
    buses = Buses()
    made: list[list[str]] = []

    def link() -> list[str]:
        made.append([])
        return made[-1]

    first = buses.attach("test:tcp:10.0.0.1:502", link)
    second = buses.attach("test:tcp:10.0.0.1:502", link, frame_gap=0.005)
    other = buses.attach("test:tcp:10.0.0.2:502", link)
    assert first is second and first is not other
    assert len(made) == 2 and first.resource is made[0]
    assert first.users == 2 and first.frame_gap == 0.005
    assert buses.detach(first) is None
    assert "test:tcp:10.0.0.1:502" in buses
    assert buses.detach(second) is made[0]
    assert "test:tcp:10.0.0.1:502" not in buses
