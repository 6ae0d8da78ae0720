"""The twin store: atomic files, durable desired values, write-behind reported values, kill -9."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.fixtures.brokers import Mosquitto
from tests.fixtures.processes import service
from tests.fixtures.twin import SAMPLE_DEVICES
from twin.client import TwinClient
from twin.engine import DeviceTwin, TwinProperty, TwinValue
from twin.manifests import load_manifests
from twin.store import TwinStore


def twin_with(value: str) -> DeviceTwin:
    return DeviceTwin("plant/pump", {"speed": TwinProperty(expected=TwinValue(value, 5), type="int")})


def stored_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "twins").iterdir())


async def test_durable_write_is_on_disk_when_save_returns(tmp_path: Path) -> None:
    async with TwinStore(tmp_path, flush_interval=3600) as store:
        await store.save_twin(twin_with("7"), durable=True)
        assert stored_files(tmp_path) == ["plant__pump.json"]
        assert TwinStore(tmp_path).load().twins["plant/pump"] == twin_with("7")


async def test_reported_values_are_written_behind_and_flushed_on_close(tmp_path: Path) -> None:
    store = TwinStore(tmp_path, flush_interval=3600)
    async with store:
        await store.save_twin(twin_with("8"), durable=False)
        assert stored_files(tmp_path) == []
    assert TwinStore(tmp_path).load().twins["plant/pump"] == twin_with("8")


async def test_definitions_round_trip(tmp_path: Path) -> None:
    manifests = load_manifests([SAMPLE_DEVICES])
    async with TwinStore(tmp_path) as store:
        await store.save_definitions(manifests.models, manifests.devices)
    loaded = TwinStore(tmp_path).load()
    assert loaded.devices == manifests.devices
    assert loaded.models == manifests.models


async def test_files_of_several_megabytes_are_read_whole(tmp_path: Path) -> None:
    # Files are read in 1 MiB pieces: a thousand devices' definitions (~1.3 MB) take several.
    manifests = load_manifests([SAMPLE_DEVICES])
    renamed = [
        device.model_copy(update={"metadata": device.metadata.model_copy(update={"name": f"d{n}"})})
        for n, device in enumerate(list(manifests.devices.values()) * 1500)
    ]
    devices = {device.id: device for device in renamed}
    async with TwinStore(tmp_path) as store:
        await store.save_definitions(manifests.models, devices)
    assert (tmp_path / "definitions.json").stat().st_size > 2 * 2**20
    assert TwinStore(tmp_path).load().devices == devices


async def test_a_corrupt_file_is_moved_aside_and_the_rest_loads(tmp_path: Path) -> None:
    async with TwinStore(tmp_path) as store:
        await store.save_twin(twin_with("1"), durable=True)
        await store.save_twin(DeviceTwin("default/other"), durable=True)
    (tmp_path / "twins" / "plant__pump.json").write_text('{"_default": {"1": ')
    loaded = TwinStore(tmp_path).load()
    assert set(loaded.twins) == {"default/other"}
    assert (tmp_path / "twins" / "plant__pump.json.corrupt").exists()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "is empty"),
        (b'{"_default": {"1": {"seq": 5, "properties": {}}}}', "without a device_id"),
        (b'{"_default": {"1": {"device_id": "plant/pump", "seq": "x"}}}', "seq that is not a number"),
        (
            b'{"_default": {"1": {"device_id": "plant/pump", "seq": 1, "properties": {"p": 3}}}}',
            "cannot be read",
        ),
        (b'{"_default": [1, 2]}', "does not hold TinyDB records"),
        (b"[]", "does not hold a TinyDB document"),
    ],
)
async def test_a_twin_file_of_the_wrong_shape_is_moved_aside_with_an_error(
    tmp_path: Path, content: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with TwinStore(tmp_path) as store:
        await store.save_twin(twin_with("1"), durable=True)
        await store.save_twin(DeviceTwin("default/other"), durable=True)
    broken = tmp_path / "twins" / "plant__pump.json"
    broken.write_bytes(content)
    loaded = TwinStore(tmp_path).load()
    assert set(loaded.twins) == {"default/other"}
    assert not broken.exists()
    assert (tmp_path / "twins" / "plant__pump.json.corrupt").read_bytes() == content
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert str(broken) in record.getMessage() and why in record.getMessage()


@pytest.mark.parametrize(
    "content",
    [b"", b'{"models": {"1": {"key": "x"}}}', b'{"devices": {"1": {"object": {"apiVersion": 3}}}}', b"7"],
)
async def test_a_definitions_file_of_the_wrong_shape_is_moved_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "definitions.json").write_bytes(content)
    loaded = TwinStore(tmp_path).load()
    assert loaded.devices == {} and loaded.models == {}
    assert (tmp_path / "definitions.json.corrupt").read_bytes() == content
    assert any("definitions.json" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_the_newest_record_wins_whichever_file_holds_it(tmp_path: Path) -> None:
    async with TwinStore(tmp_path, flush_interval=3600) as store:
        await store.save_twin(twin_with("1"), durable=False)
        await store.flush()
        await store.save_twin(twin_with("2"), durable=True)
    assert TwinStore(tmp_path).load().twins["plant/pump"] == twin_with("2")
    async with TwinStore(tmp_path, flush_interval=3600) as store:
        await store.save_twin(twin_with("3"), durable=False)
    assert TwinStore(tmp_path).load().twins["plant/pump"] == twin_with("3")


async def test_many_reported_twins_are_flushed_in_one_file(tmp_path: Path) -> None:
    async with TwinStore(tmp_path, flush_interval=3600) as store:
        for n in range(50):
            await store.save_twin(DeviceTwin(f"default/d{n}"), durable=False)
        await store.flush()
        assert stored_files(tmp_path) == []
        assert len(TwinStore(tmp_path).load().twins) == 50


async def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    async with TwinStore(tmp_path) as store:
        for n in range(20):
            await store.save_twin(twin_with(str(n)), durable=n % 2 == 0)
    assert stored_files(tmp_path) == ["plant__pump.json"]


def _reported_on_disk(data_dir: Path, device: str, name: str) -> str | None:
    twin = TwinStore(data_dir).load().twins.get(device)
    if twin is None or name not in twin.properties:
        return None
    actual = twin.properties[name].actual
    return actual.value if actual is not None else None


@pytest.mark.timeout(90)
async def test_twins_survive_kill_9_of_the_node(private_mosquitto: Mosquitto, tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    broker = private_mosquitto.address.url
    args = ["node", "edge-node-1", "--broker", broker, "--data-dir", str(data_dir)]
    with service(*args, "--devices", str(SAMPLE_DEVICES)) as node:
        node.wait_for("twin service for 2 devices")
        async with TwinClient(broker) as client:
            # A desired value is durable once its result has been published.
            await client.set_desired("default/thermostat", {"target": "27"})
            await client.report("default/thermostat", {"temperature": "18.5"})
        # Reported values are written behind: within the flush interval (0.5 s) they reach the disk.
        deadline = time.monotonic() + 10
        while _reported_on_disk(data_dir, "default/thermostat", "temperature") != "18.5":
            assert time.monotonic() < deadline, "reported value never written behind"
            await asyncio.sleep(0.05)
        node.kill()
    # Restart from the data directory alone.
    with service(*args) as node:
        node.wait_for("twin service for 2 devices")
        async with TwinClient(broker) as client:
            state = await client.get("default/thermostat")
    assert state["target"].desired == "27"
    assert state["temperature"].reported == "18.5"
