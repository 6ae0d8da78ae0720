"""Devices assigned by the cloud: definitions with versioned desired values, and observers of changes."""

from __future__ import annotations

from pathlib import Path

from edgemqtt.client import BrokerAddress
from tests.fixtures.mqtt import mqtt_probe
from tests.fixtures.twin import SAMPLE_DEVICES, start_twin
from twin.client import TwinClient
from twin.engine import Version
from twin.manifests import Manifests, load_manifests
from twin.observers import TwinChange
from twin.registry import Assignment

SAMPLES = load_manifests([SAMPLE_DEVICES])
THERMOSTAT = SAMPLES.devices["default/thermostat"]
MODEL = SAMPLES.models["default/thermostat-model"]


def assignment(desired: dict[str, tuple[str, Version]], generation: int = 3) -> Assignment:
    meta = THERMOSTAT.metadata.model_copy(update={"generation": generation})
    return Assignment(THERMOSTAT.model_copy(update={"metadata": meta}), MODEL, desired)


async def test_an_assigned_device_is_served_with_its_desired_values_and_announced(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    changes: list[tuple[str, TwinChange]] = []
    async with (
        start_twin(broker, Manifests(), data_dir=tmp_path) as service,
        mqtt_probe(broker, "$hw/events/node/edge-node-1/membership/updated") as probe,
    ):
        service.add_observer(lambda device_id, change: changes.append((device_id, change)))
        await service.apply_assignments([assignment({"target": ("22", Version(1, 0))})])
        _, announced = await probe.next_json()
        async with TwinClient(broker) as client:
            state = await client.get("thermostat")
        held = service.held()
    assert [d["id"] for d in announced["added_devices"]] == ["default/thermostat"]
    assert state["target"].desired == "22"  # the manifest's own desired value "20" is not applied
    assert changes == [("default/thermostat", TwinChange(desired=frozenset({"target"}), origin="cloud"))]
    assert held == {"default/thermostat": (3, {"target": Version(1, 0)})}


async def test_a_local_desired_write_is_told_to_observers_as_an_edge_change(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    changes: list[TwinChange] = []
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path) as service:
        service.add_observer(lambda _, change: changes.append(change))
        async with TwinClient(broker) as client:
            await client.set_desired("thermostat", {"target": "24"})
            await client.report("thermostat", {"temperature": "19.5"})
    assert changes == [
        TwinChange(desired=frozenset({"target"}), origin="edge"),
        TwinChange(reported=frozenset({"temperature"}), origin="edge"),
    ]


async def test_a_cloud_value_that_lost_to_a_local_write_is_kept_local_and_reported_as_lost(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    changes: list[TwinChange] = []
    async with start_twin(broker, Manifests(), data_dir=tmp_path) as service:
        await service.apply_assignments([assignment({"target": ("22", Version(1, 0))})])
        async with TwinClient(broker) as client:
            await client.set_desired("thermostat", {"target": "25"})  # versions become (1, 1)
        service.add_observer(lambda _, change: changes.append(change))
        await service.apply_assignments([assignment({"target": ("23", Version(1, 0))})])
        expected = service.twins["default/thermostat"].properties["target"].expected
    assert expected is not None and expected.value == "25"
    assert changes == [TwinChange(desired=frozenset({"target"}), origin="edge")]


async def test_a_complete_assignment_takes_away_the_devices_it_does_not_list(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    async with start_twin(broker, [SAMPLE_DEVICES], data_dir=tmp_path) as service:
        await service.apply_assignments([assignment({})], complete=True)
        assert set(service.devices) == {"default/thermostat"}
        assert set(service.models) == {"default/thermostat-model"}
    assert (tmp_path / "removed" / "plant__boiler.json").exists()


async def test_a_restart_from_the_store_keeps_the_cloud_s_versions_of_assigned_desired_values(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    async with start_twin(broker, Manifests(), data_dir=tmp_path) as service:
        await service.apply_assignments([assignment({"target": ("22", Version(1796143644749, 0))})])
        before = service.held()
    # The stored Device carries desired "20" in its spec (the manifest's); the cloud's pair is what counts.
    async with start_twin(broker, None, data_dir=tmp_path) as service:
        assert service.held() == before
        expected = service.twins["default/thermostat"].properties["target"].expected
        assert expected is not None and expected.value == "22"


async def test_a_node_restarted_from_its_store_keeps_its_desired_values_and_their_versions(
    broker: BrokerAddress, tmp_path: Path
) -> None:
    """The stored Device keeps the cluster's spec ("20"); the twin holds newer values than it."""
    async with start_twin(broker, Manifests(), data_dir=tmp_path) as service:
        await service.apply_assignments([assignment({"target": ("22", Version(1, 0))})])
        async with TwinClient(broker) as client:
            await client.set_desired("thermostat", {"target": "25"})  # versions become (1, 1)
    async with start_twin(broker, None, data_dir=tmp_path) as service:
        held = service.held()
        async with TwinClient(broker) as client:
            state = await client.get("thermostat")
    assert state["target"].desired == "25"
    assert held == {"default/thermostat": (3, {"target": Version(1, 1)})}
