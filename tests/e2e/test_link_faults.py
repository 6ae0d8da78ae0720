"""The cloud link broken in every way a deployment breaks it, with the real pieces (tests/fixtures/cluster).

In each test the device keeps changing and the cluster or the edge changes a desired value while
something is down: the cloud broker, cloud-sync (restarted, or one of two replicas killed), or the
node agent itself (killed and restarted while the cloud broker is still down). The edge keeps
serving throughout; once everything is back, the Device's status holds the latest reported value,
the device holds the latest desired value, and nothing went back to an older value on the way:
neither in the status (every version of the Device is watched) nor on the device (every register
write is recorded).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from mappers.modbus.decoding import RegisterKind
from tests.fixtures.cluster import (
    FAN,
    SETPOINT,
    VERSIONS_ANNOTATION,
    Cluster,
    RecordingSlave,
    assert_never_regressed,
    edge_until,
    observed_desired,
    register_values,
    reported,
    spec_desired,
    spec_values,
    stamped,
    state,
    thermostat,
    twin_of,
)
from tests.fixtures.modbus import tcp_modbus
from twin.client import TwinClient

HOLDING = RegisterKind.HOLDING


async def test_with_the_cloud_broker_stopped_the_edge_goes_on_and_the_newer_cloud_value_wins_after(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    device_id = f"default/{name}"
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"), e2e.history(name) as seen:
        await modbus.sim.set(HOLDING, 0, [215])
        device = thermostat(name, node, modbus.port, setpoint="20")
        await e2e.apply(device)
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="21.5 reported")

        await asyncio.to_thread(e2e.broker.stop)
        await e2e.apply(thermostat(name, node, modbus.port, setpoint="26"))  # the cluster changes it ...
        await e2e.device_until(name, stamped("setpoint", "26"), what="26 stamped")
        async with TwinClient(e2e.local) as app:  # ... and, later, an app at the edge
            await app.set_desired(device_id, {"setpoint": "24"})
        await slave.until_written(SETPOINT, 24)
        await modbus.sim.set(HOLDING, 0, [241])
        await edge_until(e2e.local, device_id, lambda t: t["temperature"].reported == "24.1")

        await asyncio.to_thread(e2e.broker.start)
        await slave.until_written(SETPOINT, 26)
        final = await e2e.device_until(
            name,
            lambda d: (
                reported(d, "temperature") == "24.1"
                and observed_desired(d, "setpoint") == "26"
                and reported(d, "setpoint") == "26"
                and state(d) == "online"
            ),
            what="the latest reading, the cluster's 26 observed and read back, online",
        )
        edge = await edge_until(e2e.local, device_id, lambda t: t["setpoint"].desired == "26")
    assert spec_desired(final, "setpoint") == "26"
    assert register_values(slave) == [20, 24, 26]
    assert spec_values(seen, "setpoint") == ["20", "26"]  # the edge's 24 lost to the newer 26
    assert edge["setpoint"].reported == "26"
    assert_never_regressed(seen)


async def test_a_node_killed_and_restarted_while_the_cloud_is_down_serves_from_disk_then_reconciles(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    """While the cloud broker is down the cluster changes the setpoint and an app at the edge the fan
    speed; the node is killed (-9) and started again before the broker is back."""
    name, node = f"{prefix}-thermo", e2e.node_name()
    device_id = f"default/{name}"
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.history(name) as seen:
        await modbus.sim.set(HOLDING, 0, [215])
        async with e2e.node(node, tmp_path / "node") as agent:
            await e2e.apply(thermostat(name, node, modbus.port, setpoint="20", fan="1"))
            await e2e.device_until(name, lambda d: reported(d, "fan") == "1", what="fan 1 read back")
            await asyncio.to_thread(e2e.broker.stop)
            await e2e.apply(thermostat(name, node, modbus.port, setpoint="26", fan="1"))
            async with TwinClient(e2e.local) as app:
                await app.set_desired(device_id, {"fan": "3"})
            await slave.until_written(FAN, 3)
            await asyncio.to_thread(agent.kill)  # kill -9: no flush, no goodbye
        await modbus.sim.set(HOLDING, 0, [199])
        async with e2e.node(node, tmp_path / "node"):
            # The cloud broker is still down: the node serves its devices from its own store.
            async with TwinClient(e2e.local) as app:
                held = await app.get(device_id)
            await edge_until(e2e.local, device_id, lambda t: t["temperature"].reported == "19.9")
            await asyncio.to_thread(e2e.broker.start)
            await slave.until_written(SETPOINT, 26)
            final = await e2e.device_until(
                name,
                lambda d: (
                    spec_desired(d, "fan") == "3"
                    and observed_desired(d, "fan") == "3"
                    and observed_desired(d, "setpoint") == "26"
                    and reported(d, "setpoint") == "26"
                    and reported(d, "temperature") == "19.9"
                ),
                what="the edge's fan in the spec, the cluster's setpoint on the device, the latest reading",
            )
    assert (held["setpoint"].desired, held["fan"].desired) == ("20", "3")  # as the node held them
    assert register_values(slave, FAN) == [1, 3]
    assert register_values(slave) == [20, 26]
    versions = json.loads(final["metadata"]["annotations"][VERSIONS_ANNOTATION])
    assert versions["fan"]["value"] == "3" and versions["fan"]["edge"] >= 1
    assert spec_values(seen, "setpoint") == ["20", "26"]
    assert spec_values(seen, "fan") == ["1", "3"]
    assert_never_regressed(seen)


async def test_cloud_sync_restarted_catches_up_with_what_changed_while_it_was_away(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"), e2e.history(name) as seen:
        await modbus.sim.set(HOLDING, 0, [215])
        device = thermostat(name, node, modbus.port, setpoint="20")
        await e2e.apply(device)
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="21.5 reported")

        await asyncio.to_thread(e2e.clouds[0].stop)
        await modbus.sim.set(HOLDING, 0, [233])
        await e2e.apply(thermostat(name, node, modbus.port, setpoint="27"))
        await edge_until(e2e.local, f"default/{name}", lambda t: t["temperature"].reported == "23.3")
        await asyncio.to_thread(e2e.start_cloud)
        await slave.until_written(SETPOINT, 27)
        final = await e2e.device_until(
            name,
            lambda d: reported(d, "temperature") == "23.3" and reported(d, "setpoint") == "27",
            what="the reading and the setpoint of while cloud-sync was away",
        )
    assert observed_desired(final, "setpoint") == "27"
    assert register_values(slave) == [20, 27]
    assert_never_regressed(seen)


async def test_one_of_two_cloud_sync_replicas_killed_loses_nothing(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"), e2e.history(name) as seen:
        await modbus.sim.set(HOLDING, 0, [200])
        device = thermostat(name, node, modbus.port, setpoint="20")
        await e2e.apply(device)
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "20", what="20 reported")
        await asyncio.to_thread(e2e.start_cloud)  # a second replica
        first = e2e.clouds[0]
        for step in range(1, 21):
            await modbus.sim.set(HOLDING, 0, [200 + step])
            reading = f"{(200 + step) / 10:g}"
            await edge_until(
                e2e.local, f"default/{name}", lambda t, r=reading: t["temperature"].reported == r
            )
            if step == 10:
                await asyncio.to_thread(first.kill)
                await e2e.apply(thermostat(name, node, modbus.port, setpoint="28"))
        await slave.until_written(SETPOINT, 28)
        final = await e2e.device_until(
            name,
            lambda d: reported(d, "temperature") == "22" and reported(d, "setpoint") == "28",
            what="the last reading and the new setpoint",
        )
    assert observed_desired(final, "setpoint") == "28"
    assert twin_of(final, "temperature")["reported"]["value"] == "22"
    assert register_values(slave) == [20, 28]
    assert_never_regressed(seen)


async def test_after_the_cloud_broker_comes_back_a_device_whose_state_did_not_change_is_online_again(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    """Its node went NotReady with the broker (its will), its devices' state unknown; the device
    sends its state only when it changes (no stateReport), and it did not change meanwhile."""
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"):
        await modbus.sim.set(HOLDING, 0, [215])
        await e2e.apply(thermostat(name, node, modbus.port, state_report=False))
        await e2e.device_until(name, lambda d: state(d) == "online", what="online")
        await asyncio.to_thread(e2e.broker.stop)
        await e2e.device_until(name, lambda d: state(d) == "unknown", what="unknown: its node is NotReady")
        await asyncio.to_thread(e2e.broker.start)
        await e2e.device_until(name, lambda d: state(d) == "online", what="online again")
