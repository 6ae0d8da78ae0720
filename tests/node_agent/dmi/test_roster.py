"""Registered DMI mappers: shown by ``edgetwin mapper list``, and watched again after the agent restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from edgetwin.cli import main
from node_agent.dmi import read_roster
from node_agent.dmi.roster import MapperRecord, Roster, write_roster
from node_agent.dmi.server import DmiServer
from tests.fixtures.dmi import DmiMapper


def _listing(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["mapper", "list", "--data-dir", str(data_dir)]) == 0
    return capsys.readouterr().out


async def test_mapper_list_shows_registered_dmi_mappers_beside_the_plugins(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper], capsys: pytest.CaptureFixture[str]
) -> None:
    assert dmi_node.data_dir is not None
    assert "none registered" in _listing(dmi_node.data_dir, capsys)
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    out = _listing(dmi_node.data_dir, capsys)
    assert "virtual" in out  # the plugins come first
    assert f"DMI mappers of node edge-node-1 (socket {dmi_node.socket}" in out
    line = next(line for line in out.splitlines() if "sim-mapper" in line)
    assert line.split() == ["sim-mapper", "sim", str(mapper.socket), "online", "2"]
    await mapper.stop()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "dead", dmi_node.changed)
    assert "sim-mapper  sim" in _listing(dmi_node.data_dir, capsys).replace(str(mapper.socket), "")
    assert " dead " in _listing(dmi_node.data_dir, capsys)


def test_mappers_of_an_agent_that_is_gone_are_shown_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = 2**22 + 12345  # above the default pid_max: no such process
    record = MapperRecord("modbus-mapper", "modbus", "/etc/kubeedge/modbus.sock", "online", devices=3)
    write_roster(tmp_path / "nodes" / "n1", Roster("n1", "/etc/kubeedge/dmi.sock", gone, True, (record,)))
    roster = read_roster(tmp_path / "nodes" / "n1")
    assert roster is not None and not roster.running
    out = _listing(tmp_path, capsys)
    assert "agent not running" in out
    assert "unknown (was online)" in out
    (tmp_path / "nodes" / "n1" / "dmi" / "mappers.json").write_text("{not json")
    assert "no node agent serving DMI" in _listing(tmp_path, capsys)


async def test_after_an_agent_restart_a_running_mapper_is_served_without_registering_again(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    # The agent's DMI server stops (the fixture's task), and a new one starts on the same data dir.
    for task in asyncio.all_tasks():
        if task.get_name() == "DMI server":
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    restarted = DmiServer(dmi_node.service, dmi_node.settings, data_dir=dmi_node.data_dir)
    serving = asyncio.create_task(restarted.run(), name="restarted DMI server")
    try:
        await asyncio.wait_for(restarted.ready.wait(), 10)
        await mapper.wait_for(lambda: restarted.links["sim"].state == "online", restarted.changed)
        await mapper.report("boiler", {"temperature": "19"})
        await restarted.reports.drained()
        assert dmi_node.service.twins["default/boiler"].properties["temperature"].actual.value == "19"  # type: ignore[union-attr]
        assert mapper.methods() == []  # nothing was sent again: it holds the devices as they are
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def test_after_the_dmi_server_is_restarted_by_its_supervisor_its_mappers_are_served_again(
    dmi_node: DmiServer, dmi_mappers: Callable[..., DmiMapper]
) -> None:
    mapper = dmi_mappers(dmi_node.socket)
    await mapper.start()
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    for task in asyncio.all_tasks():
        if task.get_name() == "DMI server":
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert dmi_node.links == {}
    serving = asyncio.create_task(dmi_node.run(), name="DMI server")  # the fixture stops it
    await asyncio.wait_for(dmi_node.ready.wait(), 10)
    await mapper.wait_for(lambda: dmi_node.links["sim"].state == "online", dmi_node.changed)
    await mapper.report("boiler", {"temperature": "18"})
    await dmi_node.reports.drained()
    assert dmi_node.service.twins["default/boiler"].properties["temperature"].actual.value == "18"  # type: ignore[union-attr]
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
