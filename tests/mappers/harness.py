"""A twin, a mapper runner and an MQTT probe on one broker: the mapper as a node runs it.

Tests wait on what crosses the broker (the mapper's ``state/update``, the twin's documents), not on
sleeps: ``Stack.wait`` reads the probe until a message matches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from edgemqtt.client import BrokerAddress
from mappers.registry import Registry
from mappers.runner import MapperRunner
from mappers.settings import RunnerSettings
from tests.fixtures.mqtt import MqttProbe, mqtt_probe
from tests.fixtures.twin import start_twin
from tests.mappers.builders import NODE
from twin.manifests import Manifests
from twin.service import TwinService

FAST = RunnerSettings(
    default_collect_cycle=0.05,
    reconnect_delays=(0.05, 0.1, 0.2),
    membership_retry=0.2,
    membership_refresh=60.0,
    broker_delays=(0.05, 0.1),
)


@dataclass
class Stack:
    broker: BrokerAddress
    twin: TwinService
    runner: MapperRunner
    probe: MqttProbe
    seen: list[tuple[str, dict[str, Any]]]

    async def wait(
        self, suffix: str, predicate: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The next message on a topic ending in ``suffix`` whose body satisfies ``predicate``."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.probe.next(timeout)
                try:
                    body = orjson.loads(message.payload)
                except orjson.JSONDecodeError:
                    continue
                self.seen.append((message.topic, body))
                if message.topic.endswith(suffix) and predicate(body):
                    return body  # type: ignore[no-any-return]

    async def state(self, device_id: str, state: str, timeout: float = 10.0) -> None:
        await self.wait(f"device/{device_id}/state/update", lambda b: b.get("state") == state, timeout)

    async def reported(self, device_id: str, prop: str, value: str, timeout: float = 10.0) -> None:
        def match(body: dict[str, Any]) -> bool:
            current = ((body.get("twin") or {}).get(prop) or {}).get("current") or {}
            return bool((current.get("actual") or {}).get("value") == value)

        await self.wait(f"device/{device_id}/twin/update/document", match, timeout)

    def collect(self) -> None:
        """Take in everything the probe has received so far without waiting."""
        for message in self.probe.drain():
            with contextlib.suppress(orjson.JSONDecodeError):
                self.seen.append((message.topic, orjson.loads(message.payload)))

    def updates_from_mapper(self, device_id: str) -> int:
        return sum(1 for topic, _ in self.seen if topic.endswith(f"device/{device_id}/twin/update"))


async def until(condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.01) -> None:
    """Wait for a condition of in-process state (a simulated device's counters)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(step)


@contextlib.asynccontextmanager
async def mapper_stack(
    broker: BrokerAddress,
    definitions: Manifests,
    data_dir: Path,
    *,
    protocols: Sequence[str] | None = None,
    registry: Registry | None = None,
    settings: RunnerSettings = FAST,
) -> AsyncIterator[Stack]:
    async with (
        start_twin(broker, definitions, node=NODE, data_dir=data_dir) as twin,
        mqtt_probe(broker, "$hw/events/device/+/+/#") as probe,
    ):
        runner = MapperRunner(NODE, broker, protocols=protocols, registry=registry, settings=settings)
        task = asyncio.create_task(runner.run(), name="mapper runner")
        try:
            async with asyncio.timeout(10):
                await runner.ready.wait()
            yield Stack(broker, twin, runner, probe, [])
        finally:
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)
            assert done, "the mapper runner did not stop within 10 s of being cancelled"
