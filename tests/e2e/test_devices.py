"""A Device's life in a real cluster: applied with kubectl, read by its node's Modbus mapper, moved by
``kubectl patch``, set at the edge, changed, moved to another node, deleted; and the Node itself.

Everything is real (tests/fixtures/cluster.py): the API server and kubectl, mosquitto as the cloud
broker with cloud-sync's password file and ACL, ``edgetwin cloud`` and ``edgetwin node`` processes,
and a pymodbus simulator as the device.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from mappers.modbus.decoding import RegisterKind
from tests.fixtures.cluster import (
    SETPOINT,
    VERSIONS_ANNOTATION,
    Cluster,
    RecordingSlave,
    node_ready,
    observed_desired,
    register_values,
    reported,
    spec_desired,
    state,
    thermostat,
)
from tests.fixtures.modbus import tcp_modbus
from tests.fixtures.processes import run_cli
from twin.client import TwinClient
from twin.errors import UnknownDevice

HOLDING = RegisterKind.HOLDING


async def test_an_applied_device_is_read_by_its_node_and_a_patched_desired_value_reaches_the_register(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"):
        await modbus.sim.set(HOLDING, 0, [215])
        device = thermostat(name, node, modbus.port, setpoint="20")
        await e2e.apply(device)
        await slave.until_written(SETPOINT, 20)
        jsonpath = '{.status.twins[?(@.propertyName=="temperature")].reported.value}'
        await e2e.wait(f"device/{name}", f"jsonpath={jsonpath}=21.5")
        assert await e2e.kubectl_async("get", "device", name, "-o", f"jsonpath={jsonpath}") == "21.5"
        await e2e.device_until(name, lambda d: state(d) == "online", what="state online")
        assert await e2e.state_column(name) == "online"

        await modbus.sim.set(HOLDING, 0, [232])  # the room warms up
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "23.2", what="23.2 reported")

        # A merge patch replaces the whole list of properties, as on any Kubernetes API.
        device["spec"]["properties"][1]["desired"] = {"value": "25"}
        patch = {"spec": {"properties": device["spec"]["properties"]}}
        await e2e.kubectl_async("patch", "device", name, "--type", "merge", "-p", json.dumps(patch))
        await slave.until_written(SETPOINT, 25)
        status = await e2e.device_until(
            name,
            lambda d: observed_desired(d, "setpoint") == "25" and reported(d, "setpoint") == "25",
            what="setpoint 25 observed and reported",
        )
    assert register_values(slave) == [20, 25]  # each desired value written once, in order
    assert status["status"]["twins"][0]["reported"]["metadata"]["type"] in ("float", "int")


async def test_a_desired_value_set_at_the_edge_becomes_the_devices_desired_value(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node"):
        await e2e.apply(thermostat(name, node, modbus.port, setpoint="20"))
        await slave.until_written(SETPOINT, 20)
        result = await asyncio.to_thread(
            run_cli, "twin", "set", f"default/{name}", "setpoint", "31", "--broker", e2e.local.url
        )
        assert result.returncode == 0, result.stderr
        await slave.until_written(SETPOINT, 31)
        device = await e2e.device_until(
            name, lambda d: spec_desired(d, "setpoint") == "31", what="the edge's 31 in the spec"
        )
        await e2e.device_until(name, lambda d: reported(d, "setpoint") == "31", what="31 reported")
    versions = json.loads(device["metadata"]["annotations"][VERSIONS_ANNOTATION])
    assert versions["setpoint"]["value"] == "31" and versions["setpoint"]["edge"] == 1
    assert register_values(slave) == [20, 31]


def _stopped_serving(name: str) -> re.Pattern[str]:
    """The node's mapper let go of the device for good (a spec change logs "stopped …: changed")."""
    return re.compile(rf"stopped serving device default/{re.escape(name)}: (removed|no longer on this node)")


async def test_a_changed_spec_reconfigures_the_mapper_and_a_deleted_device_leaves_the_node(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus, e2e.node(node, tmp_path / "node") as agent:
        await modbus.sim.set(HOLDING, 0, [215])
        await modbus.sim.set(HOLDING, 5, [190])
        await e2e.apply(thermostat(name, node, modbus.port))
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="21.5 reported")
        pid = agent.proc.pid

        # The temperature now comes from register 5: the same node process reads it there.
        await e2e.apply(thermostat(name, node, modbus.port, temperature_register=5))
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "19", what="19 from register 5")
        assert agent.proc.pid == pid and agent.proc.poll() is None

        await e2e.kubectl_async("delete", "device", name)
        await asyncio.to_thread(agent.wait_for, _stopped_serving(name))
        async with TwinClient(e2e.local) as app:
            try:
                await app.get(f"default/{name}")
            except UnknownDevice:
                pass
            else:
                raise AssertionError(f"the node still serves {name} after its Device was deleted")
            members = await app.members(node)
    assert members == []


async def test_a_device_moved_to_another_node_is_served_there_and_no_longer_by_the_first(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, first, second = f"{prefix}-thermo", e2e.node_name(), e2e.node_name()
    slave = RecordingSlave(1)
    async with (
        tcp_modbus(slave) as modbus,
        e2e.node(first, tmp_path / "first") as agent_1,
        e2e.node(second, tmp_path / "second"),
    ):
        await modbus.sim.set(HOLDING, 0, [215])
        await e2e.apply(thermostat(name, first, modbus.port))
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="read by the first")

        await e2e.apply(thermostat(name, second, modbus.port))
        await asyncio.to_thread(agent_1.wait_for, _stopped_serving(name))
        await modbus.sim.set(HOLDING, 0, [244])
        await e2e.device_until(
            name, lambda d: reported(d, "temperature") == "24.4", what="read by the second"
        )
        async with TwinClient(e2e.local) as app:
            on_first, on_second = await app.members(first), await app.members(second)
    assert [m.id for m in on_first] == []
    assert [m.id for m in on_second] == [f"default/{name}"]


async def test_a_node_is_ready_while_it_beats_not_ready_with_its_devices_unknown_when_it_stops(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus:
        await modbus.sim.set(HOLDING, 0, [215])
        async with e2e.node(node, tmp_path / "node"):
            await e2e.apply(thermostat(name, node, modbus.port))
            created = await e2e.node_until(node, lambda n: node_ready(n) == "True", what="Ready")
            await e2e.device_until(name, lambda d: state(d) == "online", what="online")
        await e2e.node_until(node, lambda n: node_ready(n) != "True", what="NotReady")
        await e2e.device_until(name, lambda d: state(d) == "unknown", what="state unknown")
        table = await e2e.kubectl_async("get", "nodes", node)
        assert "NotReady" in table

        async with e2e.node(node, tmp_path / "node"):
            await e2e.node_until(node, lambda n: node_ready(n) == "True", what="Ready again")
            await e2e.device_until(name, lambda d: state(d) == "online", what="online again")
    assert created["metadata"]["labels"]["node-role.kubernetes.io/edge"] == ""
    assert {a["type"] for a in created["status"]["addresses"]} >= {"InternalIP"}
    assert created["status"]["nodeInfo"]["kernelVersion"]
