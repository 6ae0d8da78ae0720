"""The simulators' standard address space cache: built once, read after, never left half-made."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from asyncua import Client

from mappers.opcua import address_space
from mappers.opcua.address_space import SHELF_NAME, plan_shelf
from mappers.opcua.simulator import OpcuaSimulator
from tests.fixtures.tools import free_port


async def _serves_the_boiler(sim: OpcuaSimulator) -> None:
    async with Client(sim.url) as client:
        assert await client.get_node(sim.node_id("Temperature")).read_value() == 21.5
        # A standard node, read from the shelf on first use when cached.
        status = await client.nodes.server.get_child(["0:ServerStatus", "0:State"])
        assert await status.read_value() == 0  # Running


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


async def test_first_start_caches_the_address_space_and_the_next_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = tmp_path / "edgetwin"
    cold = plan_shelf()
    assert not cold.cached
    cold.abandon()

    async with OpcuaSimulator(port=free_port()) as first:
        await _serves_the_boiler(first)
    (folder,) = root.iterdir()
    assert folder.name.startswith("opcua-address-space-")
    assert (folder / SHELF_NAME).is_file()
    assert plan_shelf().cached

    async with OpcuaSimulator(port=free_port()) as second:
        await _serves_the_boiler(second)
    assert _leftovers(root) == []


async def test_an_unreadable_cache_is_removed_and_the_simulator_still_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plan = plan_shelf()
    assert plan.shelf is not None
    plan.shelf.touch()  # the marker of a finished cache, with no shelf behind it
    plan.finish()
    assert plan_shelf().cached

    with caplog.at_level(logging.WARNING, logger=address_space.__name__):
        async with OpcuaSimulator(port=free_port()) as sim:
            await _serves_the_boiler(sim)
    assert "unreadable: removed" in caplog.text
    assert list((tmp_path / "edgetwin").iterdir()) == []


def test_two_starts_racing_leave_one_cache_and_no_temporary_folder(tmp_path: Path) -> None:
    first, second = plan_shelf(tmp_path), plan_shelf(tmp_path)
    for plan, content in ((first, b"first"), (second, b"second")):
        assert plan.shelf is not None and not plan.cached
        plan.shelf.with_suffix(".dat").write_bytes(content)
    first.finish()
    second.finish()  # the folder exists by now: the second shelf is dropped, the first kept
    (folder,) = tmp_path.iterdir()
    assert (folder / f"{SHELF_NAME}.dat").read_bytes() == b"first"
    cached = plan_shelf(tmp_path)
    assert cached.cached and cached.shelf == folder / SHELF_NAME


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    plan = plan_shelf(tmp_path)
    assert plan.shelf is not None
    plan.shelf.with_suffix(".dat").write_bytes(b"half")
    plan.abandon()
    assert list(tmp_path.iterdir()) == []
    assert not plan_shelf(tmp_path).cached


def test_an_unwritable_cache_folder_means_no_shelf(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    plan = plan_shelf(blocked)
    assert plan.shelf is None and not plan.cached
    plan.finish()
    plan.abandon()
