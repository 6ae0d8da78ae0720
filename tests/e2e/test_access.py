"""Access control on the real cloud broker: mosquitto with the password file and ACL cloud-sync wrote.

A node logs in with the password derived from the join token and may use only its own subtree: a
node that tries to read another node's messages gets none, and what it writes into another node's
subtree (or says about another node's device in its own) changes nothing. A node whose token is
wrong is refused, and serves its devices locally all the same.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edgemqtt.client import Message, MqttClient
from mappers.modbus.decoding import RegisterKind
from tests.fixtures.cluster import (
    SETPOINT,
    Cluster,
    RecordingSlave,
    assert_never_regressed,
    edge_until,
    observed_desired,
    reported,
    spec_desired,
    thermostat,
)
from tests.fixtures.modbus import tcp_modbus
from twin.client import TwinClient
from twin.link import DeviceChange, DeviceReport, Report, ReportedValue, down_topic, node_password, up_topic

HOLDING = RegisterKind.HOLDING


async def test_a_node_can_neither_read_nor_write_another_nodes_devices(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node_b, node_a = f"{prefix}-thermo", e2e.node_name(), e2e.node_name()
    device_id = f"default/{name}"
    slave = RecordingSlave(1)
    overheard: list[Message] = []
    intruder = MqttClient(
        e2e.broker.address.with_credentials(node_a, node_password(e2e.token, node_a)),
        client_id=f"edgetwin-node-{node_a}",
        on_message=overheard.append,
    )
    async with tcp_modbus(slave) as modbus, e2e.node(node_b, tmp_path / "b"), e2e.history(name) as seen:
        await modbus.sim.set(HOLDING, 0, [215])
        await e2e.apply(thermostat(name, node_b, modbus.port))
        await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="21.5 reported")
        async with intruder:
            await intruder.subscribe(f"edgetwin/v1/nodes/{node_b}/#", qos=1)  # granted, delivers nothing
            forged = ReportedValue(value="99.9", timestamp=int(time.time() * 1000) + 86_400_000)
            report = Report(seq=1, devices={device_id: DeviceReport(twins={"temperature": forged})})
            for topic, body in (
                (up_topic(node_b, "report"), report),  # as if from B
                (up_topic(node_a, "report"), report),  # from A, about B's device
                (down_topic(node_b, "device"), DeviceChange(op="delete", id=device_id)),  # to B
            ):
                await intruder.publish_confirmed(topic, body.model_dump_json().encode())
            # B's reports, and what cloud-sync sends B, pass through the broker after these.
            for reading in (232, 247):
                await modbus.sim.set(HOLDING, 0, [reading])
                value = f"{reading / 10:g}"
                await e2e.device_until(name, lambda d, v=value: reported(d, "temperature") == v, what=value)
        async with TwinClient(e2e.local) as app:
            members = await app.members(node_b)
    assert overheard == []
    assert all(reported(obj, "temperature") != "99.9" for obj in seen)
    assert [m.id for m in members] == [device_id]  # the forged delete did not reach B
    assert_never_regressed(seen)


async def test_a_node_with_a_wrong_token_is_refused_and_keeps_serving_locally(
    e2e: Cluster, tmp_path: Path, prefix: str
) -> None:
    name, node = f"{prefix}-thermo", e2e.node_name()
    device_id = f"default/{name}"
    slave = RecordingSlave(1)
    async with tcp_modbus(slave) as modbus:
        await modbus.sim.set(HOLDING, 0, [215])
        async with e2e.node(node, tmp_path / "node"):
            await e2e.apply(thermostat(name, node, modbus.port, setpoint="20"))
            await e2e.device_until(name, lambda d: reported(d, "temperature") == "21.5", what="21.5 reported")
        async with e2e.node(node, tmp_path / "node", token="not-the-join-token") as refused:
            line = await asyncio.to_thread(refused.wait_for, "refused the connection")
            await modbus.sim.set(HOLDING, 0, [226])
            async with TwinClient(e2e.local) as app:
                await app.set_desired(device_id, {"setpoint": "21"})
            await slave.until_written(SETPOINT, 21)
            local = await edge_until(e2e.local, device_id, lambda t: t["temperature"].reported == "22.6")
        async with e2e.node(node, tmp_path / "node"):
            final = await e2e.device_until(
                name,
                lambda d: (
                    reported(d, "temperature") == "22.6"
                    and reported(d, "setpoint") == "21"
                    and spec_desired(d, "setpoint") == "21"
                ),
                what="what the node did while refused",
            )
    assert f"user {node!r}" in line and "not authorised" in line
    assert local["setpoint"].desired == "21"
    assert observed_desired(final, "setpoint") == "21"
