"""The gateway host: twin service and in-process mappers under one TaskGroup, stopped as one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from edgemqtt.client import BrokerAddress
from mappers import Registry
from mappers.virtual import VirtualMapper
from mappers.virtual.device import forget_all, simulated
from node_agent import Gateway, GatewaySettings, PieceFailed, RestartPolicy
from node_agent.gateway import Piece
from tests.mappers.builders import NODE, device, manifests, model
from tests.mappers.harness import FAST
from twin.client import TwinClient
from twin.service import TwinService
from twin.store import TwinStore

THERMO = model("thermo-model", "virtual", {"temp": "FLOAT", "target": "INT"})


def settings(broker: BrokerAddress, data_dir: Path, *, mappers: list[str] | None) -> GatewaySettings:
    thermo = device("t1", "thermo-model", "virtual", {}, {"temp": {"initial": "20.5"}, "target": {}})
    return GatewaySettings(
        node=NODE,
        broker=broker,
        data_dir=data_dir,
        manifests=manifests(THERMO, thermo),
        mappers=mappers,
        flush_interval=3600,  # only the final flush writes reported values
        runner=FAST,
    )


async def test_the_gateway_serves_twins_and_runs_mappers_until_cancelled_then_flushes(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    forget_all()
    gateway = Gateway(
        settings(broker, tmp_path, mappers=[]), registry=Registry(plugins={"virtual": VirtualMapper})
    )
    running = asyncio.create_task(gateway.run())
    async with asyncio.timeout(10):
        await gateway.ready.wait()
    async with TwinClient(broker) as client, client.subscription("default/t1") as events:
        state = await client.get("default/t1")
        while state["temp"].reported != "20.5":
            await events.get()
            state = await client.get("default/t1")
        await client.set_desired("default/t1", {"target": "7"})
        while simulated("default/t1").values.get("target") != 7:
            await events.get()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert not gateway.ready.is_set()
    stored = TwinStore(tmp_path).load().twins["default/t1"]
    actual = stored.properties["temp"].actual
    assert actual is not None and actual.value == "20.5"


async def test_without_mappers_the_gateway_runs_only_the_twin(broker: BrokerAddress, tmp_path: Path) -> None:
    gateway = Gateway(settings(broker, tmp_path, mappers=None))
    running = asyncio.create_task(gateway.run())
    async with asyncio.timeout(10):
        await gateway.ready.wait()
    assert gateway.mappers is None
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


def test_a_node_loads_the_mapper_runner_and_the_app_client_only_when_it_uses_them(tmp_path: Path) -> None:
    # What `edgetwin node` imports, in a process of its own: a node without --mappers starts
    # faster and smaller without the runner, its workers, the plugin interface and TwinClient.
    code = f"""
import sys
import edgetwin.commands.node
from edgemqtt.client import BrokerAddress
from node_agent import Gateway, GatewaySettings
from twin.service import TwinService
from twin.store import TwinStore
unused = ["mappers.runner", "mappers.worker", "mappers.plugin", "node_agent.dmi", "twin.client"]
assert not [m for m in unused if m in sys.modules], [m for m in unused if m in sys.modules]
broker = BrokerAddress("127.0.0.1", 1883)
gateway = Gateway(GatewaySettings(node="n", broker=broker, data_dir={str(tmp_path)!r}, mappers=[]))
gateway._pieces(TwinService("n", broker, TwinStore({str(tmp_path)!r})))
assert type(gateway.mappers).__name__ == "MapperRunner" and "mappers.runner" in sys.modules
from mappers import Mapper
from twin import TwinClient
assert "mappers.plugin" in sys.modules and "twin.client" in sys.modules
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


class _GatewayWithAFailingPiece(Gateway):
    """A gateway with one more piece, which fails once the others run (as a broken cloud link would)."""

    def _pieces(self, service: TwinService) -> list[Piece]:
        async def failing() -> None:
            await service.ready.wait()
            raise RuntimeError("link on fire")

        return [*super()._pieces(service), ("the failing piece", failing, RestartPolicy(restart=False))]


async def test_a_piece_that_fails_for_good_stops_the_whole_gateway_and_the_store_is_flushed(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    gateway = _GatewayWithAFailingPiece(settings(broker, tmp_path, mappers=None))
    with pytest.raises(PieceFailed, match="the failing piece failed: RuntimeError: link on fire"):
        async with asyncio.timeout(10):
            await gateway.run()
    assert gateway.service is not None and not gateway.service.ready.is_set()
    assert "default/t1" in TwinStore(tmp_path).load().twins
