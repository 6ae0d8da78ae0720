"""Desired values set at the edge become the Device's, unless the cluster changed them meanwhile."""

from __future__ import annotations

import asyncio
import json

from tests.cloud_sync.conftest import MODEL, CloudStack, device_yaml
from twin.link import DesiredValue

ANNOTATION = "twin.edgetwin.io/desired-versions"


def stamps(device: dict) -> dict:  # type: ignore[type-arg]
    return json.loads(device["metadata"]["annotations"][ANNOTATION])  # type: ignore[no-any-return]


async def test_an_edge_value_with_the_clusters_cloud_counter_and_a_newer_edge_counter_is_accepted(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    before = await stack.device("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0].desired["target"]
        seq = await node.desired(
            {"default/thermo-1": {"target": DesiredValue(value="55", cloud=held.cloud, edge=1)}}
        )
        await node.wait_ack("desired", seq)
        echo = await node.change_of("default/thermo-1")  # the new generation goes down too: harmless
    after = await stack.device("thermo-1")
    assert after["spec"]["properties"][1]["desired"]["value"] == "55"
    assert stamps(after)["target"] == {"value": "55", "cloud": held.cloud, "edge": 1}
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1  # one write
    assert echo.assignment is not None
    assert echo.assignment.desired["target"] == DesiredValue(value="55", cloud=held.cloud, edge=1)


async def test_an_edge_value_loses_to_a_change_made_in_the_cluster_meanwhile(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0].desired["target"]
        await stack.apply(device_yaml("thermo-1", "node-a", target="70"))
        cloud_write = await node.change_of("default/thermo-1")
        assert cloud_write.assignment is not None
        assert cloud_write.assignment.desired["target"].cloud == held.cloud + 1
        seq = await node.desired(
            {"default/thermo-1": {"target": DesiredValue(value="5", cloud=held.cloud, edge=1)}}
        )
        await node.wait_ack("desired", seq)
    after = await stack.device("thermo-1")
    assert after["spec"]["properties"][1]["desired"]["value"] == "70"
    assert stamps(after)["target"]["value"] == "70"


async def test_a_repeated_edge_value_is_acknowledged_without_a_second_write(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0].desired["target"]
        value = {"default/thermo-1": {"target": DesiredValue(value="44", cloud=held.cloud, edge=3)}}
        await node.wait_ack("desired", await node.desired(value))
        generation = (await stack.device("thermo-1"))["metadata"]["generation"]
        await node.wait_ack("desired", await node.desired(value))
    assert (await stack.device("thermo-1"))["metadata"]["generation"] == generation


async def test_an_edge_value_the_model_refuses_is_acknowledged_and_recorded_as_an_event(
    stack: CloudStack,
) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-a") as node:
        held = (await node.hello()).devices[0].desired["target"]
        seq = await node.desired(
            {
                "default/thermo-1": {
                    "target": DesiredValue(value="500", cloud=held.cloud, edge=1),
                    "temperature": DesiredValue(value="3", cloud=0, edge=1),
                    "nothing": DesiredValue(value="1", cloud=0, edge=1),
                }
            }
        )
        await node.wait_ack("desired", seq)
    after = await stack.device("thermo-1")
    assert after["spec"]["properties"][1]["desired"]["value"] == "20"
    async with asyncio.timeout(20):
        await stack.cloud.recorder.wait_written("EdgeDesiredRefused", "thermo-1")
    described = await stack.kubectl_run("describe", "device", "thermo-1")
    assert "EdgeDesiredRefused" in described
    assert "above the maximum 100" in described
    assert "ReadOnly" in described


async def test_desired_values_for_another_nodes_device_are_refused(stack: CloudStack) -> None:
    await stack.apply(MODEL + "---" + device_yaml("thermo-1", "node-a"))
    await stack.start_cloud()
    await stack.stamped("thermo-1")
    async with stack.peer("node-b") as intruder:
        seq = await intruder.desired(
            {"default/thermo-1": {"target": DesiredValue(value="1", cloud=0, edge=9)}}
        )
        await intruder.wait_ack("desired", seq)
    assert (await stack.device("thermo-1"))["spec"]["properties"][1]["desired"]["value"] == "20"
