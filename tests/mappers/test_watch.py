"""Pushed values that cannot be used: a ``watch`` may yield the error in place of the value."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mappers.plugin import MappedProperty, Mapper, PluginConfig, ReadResult
from mappers.registry import Registry
from tests.fixtures.brokers import Mosquitto
from tests.mappers.builders import device, manifests, model
from tests.mappers.harness import mapper_stack
from twin.errors import DeviceRefused
from twin.values import Value

METER = model("meter-model", "pushing-errors", {"temp": "FLOAT"}, read_only=("temp",))


class _Pushing(Mapper[PluginConfig, PluginConfig]):
    protocol = "pushing-errors"
    pushed: asyncio.Queue[tuple[str, ReadResult]]

    async def read(self, prop: MappedProperty[PluginConfig]) -> Value:
        return 20.0

    def pushes(self, prop: MappedProperty[PluginConfig]) -> bool:
        return True

    async def watch(
        self, props: Sequence[MappedProperty[PluginConfig]]
    ) -> AsyncIterator[tuple[str, ReadResult]]:
        while True:
            yield await self.pushed.get()


async def test_a_pushed_error_makes_the_device_unhealthy_until_a_good_value_comes(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _Pushing.pushed = asyncio.Queue()
    registry = Registry(plugins={"pushing-errors": _Pushing})
    meter = device("meter", "meter-model", "pushing-errors", {}, {"temp": {}})
    async with mapper_stack(mosquitto.address, manifests(METER, meter), tmp_path, registry=registry) as stack:
        await stack.state("default/meter", "online")
        _Pushing.pushed.put_nowait(("temp", DeviceRefused("the sensor sent 3 bytes, 5 expected")))
        await stack.state("default/meter", "unhealthy")
        assert "reading temp failed: DeviceRefused: the sensor sent 3 bytes, 5 expected" in caplog.text
        _Pushing.pushed.put_nowait(("temp", 21.5))
        await stack.state("default/meter", "online")
        await stack.reported("default/meter", "temp", "21.5")
